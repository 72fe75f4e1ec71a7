"""The lock of a folder cramkit writes: `.<name>.lock` beside it (a corpus `--output`, a training run's
folder, a GLUE `--out`), held by the run writing it.

A second run on the same folder refuses while the first lives. On a local disk the lock is an flock on
the file, which the system releases when its process dies, however it dies: a lock file nobody holds is
a dead run's and is taken over. Object stores have no locks: there the file names its run (host and
pid); a lock of a process on this host that no longer exists is taken over, any other is refused with
the command to remove it once its run is known to be dead. A file by that name that cramkit did not
write is never taken over or deleted. Only object stores need Beam (pipeline.files.storage): on a local disk
the lock works without it.
"""

import errno
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.files.record import is_local

SIGNATURE = "cramkit run lock "


class LockError(Exception):
    """Another run holds the output, or the lock file is not cramkit's; the message says what to do."""


@dataclass
class Lock:
    path: str | None  # None once released
    fd: int | None  # the held file (local disk), None on an object store
    note: str | None  # "took over ..." when a dead run's lock was taken over

    def release(self) -> None:
        """Remove the lock file (once; later calls do nothing)."""
        fd, self.fd, path, self.path = self.fd, None, self.path, None
        if path is None:
            return
        if fd is None:
            from pipeline.files import storage

            storage.delete_tree(path)
            return
        try:
            os.unlink(path)  # while held: a run that opens the name from now on gets a new file
        finally:
            os.close(fd)


def _holder(text: str) -> str:
    try:
        run = json.loads(text[len(SIGNATURE):])
        return f"pid {run['pid']} on {run['host']}, started {run['started']}"
    except (ValueError, KeyError, TypeError):
        return "a run that did not finish writing its lock"


def _content() -> bytes:
    run = {"pid": os.getpid(), "host": socket.gethostname(),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return (SIGNATURE + json.dumps(run) + "\n").encode()


def _foreign(path: str, what: str) -> LockError:
    return LockError(f"{path}: exists and was not written by cramkit, so it is neither used as a lock nor "
                     f"deleted; move it away or choose another {what}")


def _busy(out: str, path: str, text: str, what: str, hint: str = "") -> LockError:
    return LockError(f"{what} {out}: another run ({_holder(text)}) is writing it and holds {path}; wait "
                     f"for it to end or choose another {what}{hint}")


def hold(folder: Path, what: str) -> Lock:
    """Hold the lock `.<name>.lock` beside the local `folder` (see take), saying so when a dead run's lock
    was taken over."""
    held = take(str(folder), str(folder.parent / f".{folder.name}.lock"), what)
    if held.note:
        print(f"note: {held.note}", file=sys.stderr)
    return held


def take(out: str, path: str, what: str = "--output") -> Lock:
    """Hold the lock file `path` of the folder `out` (`what` names it in messages: "--output", "run
    folder", ...), or raise LockError (one line)."""
    return _take_local(out, path, what) if is_local(path) else _take_object(out, path, what)


def _take_local(out: str, path: str, what: str) -> Lock:
    while True:
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            fd, created = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644), True
        except FileExistsError:
            try:
                fd, created = os.open(path, os.O_RDWR | os.O_NOFOLLOW), False
            except FileNotFoundError:  # its run just ended and removed it
                continue
            except OSError as e:  # a link, a folder, a file we may not write
                raise _foreign(path, what) from e
        except OSError as e:
            raise LockError(f"{path}: cannot create the lock of {what} {out} ({e.strerror}); choose "
                            f"another {what}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise LockError(f"{path}: cannot lock it ({e.strerror})") from e
            if not text.startswith(SIGNATURE) and text:
                raise _foreign(path, what) from e
            raise _busy(out, path, text, what) from e
        try:  # the name may have been removed (and made anew) by an ending run between open and flock
            same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    old = "" if created else os.pread(fd, 4096, 0).decode("utf-8", "replace")
    if not created and not old.startswith(SIGNATURE):
        os.close(fd)
        raise _foreign(path, what)
    os.ftruncate(fd, 0)
    os.pwrite(fd, _content(), 0)
    note = None if created else f"took over the lock {path} of a run that is no longer running ({_holder(old)})"
    return Lock(path, fd, note)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _take_object(out: str, path: str, what: str) -> Lock:
    from pipeline.files import storage

    note = None
    if storage.exists(path):
        old = storage.read_bytes(path).decode("utf-8", "replace")
        if not old.startswith(SIGNATURE):
            raise _foreign(path, what)
        try:
            run = json.loads(old[len(SIGNATURE):])
            dead = run["host"] == socket.gethostname() and not _alive(int(run["pid"]))
        except (ValueError, KeyError, TypeError):
            dead = False
        if not dead:
            raise _busy(out, path, old, what, f" (object stores hold no live locks: once that run is known to be "
                                        f"dead, delete {path})")
        note = f"took over the lock {path} of a run that is no longer running ({_holder(old)})"
    storage.write_bytes(path, _content())
    return Lock(path, None, note)
