"""A local input folder, walked: the files below it that are read, and why anything else is skipped.

Below the folder (a folder spec, or a glob's fixed part), names starting with "." are "hidden" (each file
of a hidden folder counted); FIFOs, sockets and devices are "fifo" / "socket" / "device", never opened.
A symbolic link is resolved before anything is opened, and its target decides:
- inside the input tree: "symlink_inside"; the target is read at its own path (when the spec selects
  it), so nothing is read twice;
- out of the tree: "symlink_outside", unless `follow` (`source.follow_symlinks=true`): then a file is
  read under the link's name, and a folder is walked as if it lay below the link;
- nothing: "symlink_dangling"; a cycle of links, or a folder that holds the link itself: "symlink_loop".
A folder below the root that holds `marker` (cramkit's record of an output it wrote) is skipped whole:
each file in it that the spec selects is "cramkit_output".
Anything that cannot be listed or resolved (permissions) is "unreadable".
"""

import errno
import os
import stat


def special(mode: int) -> str | None:
    """'fifo' / 'socket' / 'device' for the st_mode of a non-regular file, else None."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def tree(root: str, keep=None, below=None, follow: bool = False, marker: str | None = None):
    """(files: [(path, size, mtime)], skipped: [(path, reason)]) below the local folder `root` (ending in
    "/"). `keep(path)`: a file's path matches the glob (None: every file); `below(path)`: the glob may
    match below the folder `path` (None: always); `marker`: the file name that marks cramkit's outputs."""
    top = os.path.realpath(root)
    files, skipped = [], []

    def link(path: str, chain: tuple):
        """Classify the link at `path`; walk or keep what it leads to when that is asked for."""
        try:
            st = os.stat(path)
        except OSError as e:
            reason = {errno.ELOOP: "symlink_loop", errno.ENOENT: "symlink_dangling",
                      errno.ENOTDIR: "symlink_dangling"}.get(e.errno, "unreadable")
            if keep is None or keep(path) or below is None or below(path):
                skipped.append((path, reason))
            return
        folder = stat.S_ISDIR(st.st_mode)
        if not (keep is None or keep(path) or folder and (below is None or below(path))):
            return
        real = os.path.realpath(path)
        if _within(real, top):
            skipped.append((path, "symlink_inside"))
        elif not follow:
            skipped.append((path, "symlink_outside"))
        elif folder:
            if any(_within(c, real) for c in chain):
                skipped.append((path, "symlink_loop"))
            else:
                visit(path, False, (*chain, real))
        else:
            regular(path, st)

    def regular(path: str, st: os.stat_result):
        if keep is not None and not keep(path):
            return
        reason = special(st.st_mode)
        if reason:
            skipped.append((path, reason))
        else:
            files.append((path, st.st_size, st.st_mtime))

    def written(folder: str) -> None:
        for parent, _, names in os.walk(folder):
            skipped.extend((p, "cramkit_output") for p in (os.path.join(parent, n) for n in sorted(names))
                           if keep is None or keep(p))

    def visit(folder: str, hidden: bool, chain: tuple):
        if marker and len(chain) > 1 and os.path.isfile(os.path.join(folder, marker)):
            return written(folder)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            skipped.append((folder, "unreadable"))
            return
        for e in entries:
            path = os.path.join(folder, e.name)
            secret = hidden or e.name.startswith(".")
            try:
                if e.is_dir(follow_symlinks=False):
                    if below is None or below(path):
                        visit(path, secret, (*chain, os.path.join(chain[-1], e.name)))
                elif secret:
                    if keep is None or keep(path):
                        skipped.append((path, "hidden"))
                elif e.is_symlink():
                    link(path, chain)
                else:
                    regular(path, e.stat(follow_symlinks=False))
            except OSError:  # gone or forbidden between the listing and this look
                skipped.append((path, "unreadable"))

    if os.path.isdir(root):
        visit(root.rstrip("/") or "/", False, (top,))
    return files, skipped
