"""Every file the pipeline touches, through Beam's `FileSystems`: local paths, s3://, gs://, hdfs://, azfs://.

Paths are plain local paths or `scheme://...` URLs. A scheme works where its Beam extra is installed:
s3:// `pip install 'cramkit[s3]'` (apache-beam[aws], i.e. boto3), gs:// `cramkit[gcs]` (apache-beam[gcp]),
hdfs:// `cramkit[hdfs]` (apache-beam[hadoop], i.e. the `hdfs` client), azfs:// `cramkit[azure]`.
`check(path)` says so in one line before a pipeline starts, and every function here refuses an unknown
scheme or a local path that looks like a URL with its `//` lost (`s3:/bucket/x`), so nothing is ever
written to a local folder named `s3:`. Local paths are returned absolute (workers have another cwd).

Object stores have no folders: a "folder" is a key prefix ending in `/`, which `exists` does not see
(use `list_files`); `create` on a local path makes the parent folders; `rename_tree` exists only where the
output is local (one atomic rename), elsewhere the caller moves file by file (`move`) and marks
completion last.
`open_read` never decompresses (Beam would by file extension) and returns a seekable binary stream
(SEEK_SET, SEEK_CUR, SEEK_END; on S3 each seek is a ranged GET), so pyarrow can read an Arrow IPC file
at random through `pa.PythonFile(storage.open_read(p))`.

Inputs (`match_inputs`): a spec is a file, a folder (read recursively) or a glob. Globs follow Beam's
`FileSystems.match`: `*` and `?` stay within one path segment, `**` spans any number of segments, and
here `**/` also matches no segment at all (`data/**/*.jsonl` includes `data/a.jsonl`, as in bash's
globstar; Beam's own match would require a subfolder). On every filesystem the listing is recursive
under the fixed part of the pattern, so the rules are the same on local disk and on S3. Below that root,
files and folders whose name starts with "." (`.git/`, `.cache/`, `.hidden.txt`) are skipped and
returned with reason "hidden"; name them in the spec's fixed part to read them. A folder below that root
holding cramkit's marker `.cramkit` (an output or staging folder cramkit wrote) is skipped whole, reason
"cramkit_output". Local folders are walked by pipeline.files.walk: FIFOs, sockets and devices are returned
with reason "fifo"/"socket"/"device" and never opened (opening a FIFO blocks), and symlinks follow its policy
(a link out of the input tree is skipped unless asked for). Object-store folder markers (keys ending in "/")
are not files.

Options: the launcher calls `configure(options)` before touching a file (Beam applies the options only
once a Pipeline exists). Workers on a cluster, and the portable runner's, get them from the job's
provision info; FnApiRunner's multi_processing workers get them only through `fnapi_runner(options)`.

Costs on S3 (Beam 2.77): Beam builds a new boto3 client for every call (measured 0.3-0.5 s each on 2
busy cores, against 5 ms for the request itself: 18 of a small run's 30 s). Importing this module makes
Beam's S3 wrapper reuse one client per endpoint and credentials in each process (boto3 clients are
thread-safe); still touch few, large files and open a file once and seek. An open reader buffers up to
16 MB, an open writer up to ~5 MB.
"""

import errno
import importlib.util
import os
import re

from apache_beam.io.filesystem import BeamIOError, CompressionTypes, FileSystem
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.files import walk
from pipeline.files.record import RECORD as MARKER  # marks a folder cramkit wrote: never read as input
from pipeline.files.record import is_local

# scheme -> (module Beam needs for it, cramkit extra, Beam extra)
SCHEMES = {
    "s3": ("boto3", "s3", "aws"),
    "gs": ("google.cloud.storage", "gcs", "gcp"),
    "hdfs": ("hdfs", "hdfs", "hadoop"),
    "azfs": ("azure.storage.blob", "azure", "azure"),
}
_URL_LIKE = re.compile(r"^[A-Za-z][-A-Za-z0-9+.]*:")  # "s3:/b/x", "gs:bucket": a URL that lost its //
_GLOB = re.compile(r"[*?\[]")
_ANY_DEPTH = "\0"  # stands for "**/" while Beam's translate_pattern runs


class _Boto3Clients:
    """Stands in for the boto3 module inside Beam's S3 wrapper: `session.Session().client(**settings)`
    returns one cached client per settings instead of a new one per call."""

    def __init__(self, boto3):
        self._boto3, self._clients, self.session = boto3, {}, self

    def Session(self):  # noqa: N802 -- the name Beam calls
        return self

    def client(self, **settings):
        key = tuple(sorted((k, repr(v)) for k, v in settings.items()))
        if key not in self._clients:
            self._clients[key] = self._boto3.session.Session().client(**settings)
        return self._clients[key]


def _reuse_s3_clients() -> None:
    try:
        from apache_beam.io.aws.clients.s3 import boto3_client
    except ImportError:  # the S3 extra is not installed
        return
    if boto3_client.boto3 is not None and not isinstance(boto3_client.boto3, _Boto3Clients):
        boto3_client.boto3 = _Boto3Clients(boto3_client.boto3)


_reuse_s3_clients()


class StorageError(Exception):
    """A path that cannot be used: unknown scheme, missing extra, nothing matched, unsupported operation."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package (google, azure) is missing
        return False


def check(path: str) -> None:
    """Raise StorageError (one line naming the path and the install to do) unless `path` is usable here."""
    scheme = FileSystems.get_scheme(path)
    if scheme is None:
        if _URL_LIKE.match(path):
            raise StorageError(f"{path}: looks like a URL without '//' (write scheme://...); "
                               f"refusing to use a local folder named {path.split('/')[0]!r}")
        return
    if scheme not in SCHEMES:
        raise StorageError(f"{path}: unknown storage scheme {scheme}:// (supported: local paths, "
                           + ", ".join(f"{s}://" for s in SCHEMES) + ")")
    module, extra, beam_extra = SCHEMES[scheme]
    if not _installed(module):
        raise StorageError(f"{path}: {scheme}:// needs {module}: pip install 'cramkit[{extra}]' "
                           f"(or 'apache-beam[{beam_extra}]')")
    if not re.match(r"^[a-z0-9]+://[^/]+", path):
        raise StorageError(f"{path}: a {scheme}:// path needs a bucket: {scheme}://BUCKET/...")
    try:
        FileSystems.get_filesystem(path)
    except Exception as e:  # noqa: BLE001 -- Beam raises ValueError, or BeamIOError around anything
        raise StorageError(f"{path}: {type(e).__name__}: {e}".splitlines()[0]) from e


def configure(options) -> None:
    """Make this process's FileSystems use `options` (a PipelineOptions: --s3_endpoint_url,
    --s3_access_key_id, ...), as Beam's workers do. Call it in the launcher before any other function
    here: Beam sets it only when a Pipeline is built, and the launcher expands inputs before that."""
    FileSystems.set_options(options)


def fnapi_runner(options):
    """Beam's local FnApiRunner whose worker processes get this pipeline's options. Beam's own gives the
    processes of --direct_running_mode=multi_processing an empty set (its provision info carries none),
    so their FileSystems would miss --s3_endpoint_url and the credentials. Only text and flag options
    travel: the workers' option parser refuses the floats that numbers become on the way."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.job import utils as job_utils
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    carried = {f"beam:option:{k}:v1": v for k, v in options.get_all_options(drop_default=True).items()
               if isinstance(v, (str, bool))}
    info = beam_provision_api_pb2.ProvisionInfo(pipeline_options=job_utils.dict_to_struct(carried))
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(info))


def _fs(path: str) -> FileSystem:
    check(path)
    if FileSystems._pipeline_options is None and not is_local(path):
        configure(PipelineOptions([]))  # not configured: the SDK's defaults (credentials from the environment)
    return FileSystems.get_filesystem(path)


def _norm(path: str) -> str:
    return os.path.abspath(path) if is_local(path) else path


def join(base: str, *parts: str) -> str:
    """`base/part/...` in the base's filesystem (local: os.path.join; object stores: one '/' between)."""
    return _fs(base).join(base, *parts)


def exists(path: str) -> bool:
    """True for an existing file, or a local folder; an object-store prefix is not a file (list it)."""
    return _beam(path, lambda: _fs(path).exists(path))


def size(path: str) -> int:
    """The file's size in bytes (FileNotFoundError if missing)."""
    return _beam(path, lambda: _fs(path).size(path))


def stat(path: str) -> tuple[int, float]:
    """(size, modification time) of a file, as match_inputs lists it (object stores: whole seconds);
    FileNotFoundError if missing."""
    if is_local(path):
        st = os.stat(path)
        return st.st_size, st.st_mtime
    m = _beam(path, lambda: _fs(path).metadata(path))
    return m.size_in_bytes, int(m.last_updated_in_seconds)


def open_read(path: str):
    """A seekable binary reader of the file's raw bytes (no decompression); FileNotFoundError if missing."""
    return _fs(path).open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def create(path: str):
    """A binary writer to `path` (replaced if present; local parent folders are created). The file
    exists under its name only once the writer is closed on object stores, and there it must not be
    empty: Beam's S3 upload cannot complete with no bytes (use write_bytes, which says so)."""
    return _fs(path).create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def write_bytes(path: str, data: bytes) -> None:
    if not data and FileSystems.get_scheme(path) == "s3":
        raise StorageError(f"{path}: Beam cannot write an empty object to S3 (its multipart upload needs a part)")
    with create(path) as f:
        f.write(data)


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _as_folder(path: str) -> str:
    return path if path.endswith("/") else path + "/"


def list_files(folder: str) -> list[tuple[str, int]]:
    """Every file below `folder` (a local folder or an object-store prefix), recursively, hidden ones
    included: sorted [(path, size)]. A folder that does not exist lists nothing."""
    root = _as_folder(_norm(folder))
    return sorted((m.path, m.size_in_bytes) for m in _match(root + "**") if not m.path.endswith("/"))


def delete_tree(path: str) -> None:
    """Delete a file, or a folder / prefix and all below it; nothing there is not an error."""
    fs = _fs(path)
    path = _norm(path)
    if is_local(path):
        if os.path.lexists(path):
            _beam(path, lambda: fs.delete([path]))
    elif exists(path):
        _beam(path, lambda: fs.delete([path]))
    else:
        _beam(path, lambda: fs.delete([_as_folder(path)]))


def delete_file(path: str) -> None:
    """Delete one file; nothing there is not an error. Never a folder or prefix (see delete_tree)."""
    fs = _fs(path)
    path = _norm(path)
    if is_local(path):
        if os.path.lexists(path) and not os.path.isdir(path) or os.path.islink(path):
            os.unlink(path)
    elif exists(path):
        _beam(path, lambda: fs.delete([path]))


def move(src: str, dst: str) -> None:
    """Move one file within a filesystem (on an object store: a server-side copy, then a delete)."""
    _beam(src, lambda: _fs(src).rename([_norm(src)], [_norm(dst)]))


def rename_tree(src: str, dst: str) -> None:
    """Move the local folder `src` to `dst` in one atomic rename (`dst` must not exist). Object stores
    have no such operation: StorageError, and the caller moves file by file instead."""
    if not (is_local(src) and is_local(dst)):
        raise StorageError(f"{src} -> {dst}: folders can be renamed atomically only on local disk")
    _beam(src, lambda: _fs(src).rename([_norm(src)], [_norm(dst)]))


def _match(pattern: str):
    return _beam(pattern, lambda: FileSystems.match([pattern])[0].metadata_list)


def _pattern_regex(pattern: str) -> re.Pattern:
    """Beam's translation of the glob (`*` within a segment, `**` across), with `**/` also matching
    no segment at all."""
    regex = FileSystem.translate_pattern(pattern.replace("**/", _ANY_DEPTH))
    return re.compile(regex.replace(re.escape(_ANY_DEPTH), "(?:.*/)?"))


def input_reach(spec: str) -> tuple[str, int | None]:
    """Where an input spec reads: (root, depth), the file or folder it names or a glob's fixed folder, and
    how many path segments below root a file it reads may lie (0: root is the file; None: any)."""
    spec = _norm(spec)
    if _GLOB.search(spec):
        fixed = _GLOB.split(spec, maxsplit=1)[0]
        root = fixed[: fixed.rfind("/") + 1]
        return root, None if "**" in spec else spec[len(root):].count("/") + 1
    return spec, None if is_local(spec) and os.path.isdir(spec) or spec.endswith("/") else 0


def match_inputs(spec: str, follow_symlinks: bool = False) -> tuple[list, list]:
    """Expand an input spec (file, folder, glob; rules in the module docstring) into (files: sorted
    [(path, size, mtime)], skipped: sorted [(path, reason)]). StorageError when nothing matches."""
    fs = _fs(spec)
    local = is_local(spec)
    spec = _norm(spec)
    keep = None
    if _GLOB.search(spec):
        fixed = _GLOB.split(spec, maxsplit=1)[0]
        root, keep = fixed[: fixed.rfind("/") + 1], _pattern_regex(spec).match
    elif os.path.isdir(spec) if local else not fs.exists(spec):
        root = _as_folder(spec)
    else:  # one file, named: read even if hidden, a link followed
        root = None
    if local and root is not None:
        tail = spec[len(root):]
        deeper = lambda path: tail.count("/") > path[len(root):].count("/")  # noqa: E731
        below = None if keep is None or "**" in tail else deeper
        files, skipped = walk.tree(root, keep, below, follow_symlinks, MARKER)
    else:
        files, skipped = [], []
        found = [m for m in _match(spec if root is None else root + "**") if not m.path.endswith("/")]
        written = tuple(m.path[: -len(MARKER)] for m in found if root is not None and m.path.endswith("/" + MARKER)
                        and len(m.path) > len(root) + len(MARKER))  # cramkit's folders below the root
        for m in found:
            path = m.path
            if keep is not None and not keep(path):
                continue
            if path.startswith(written):
                skipped.append((path, "cramkit_output"))
            elif root is not None and any(part.startswith(".") for part in path[len(root):].split("/")):
                skipped.append((path, "hidden"))
            elif local and (reason := walk.special(os.stat(path).st_mode)):
                skipped.append((path, reason))
            else:
                files.append((path, m.size_in_bytes, m.last_updated_in_seconds if local else
                              int(m.last_updated_in_seconds)))
    if not files and not skipped:
        raise StorageError(f"{spec}: no such file or folder, or the pattern matches no file")
    return sorted(files), sorted(skipped)


def _beam(path: str, call):
    """call(), with Beam's BeamIOError (a {path: exception} wrapper) turned into FileNotFoundError for a
    missing file and StorageError (one line) for anything else."""
    try:
        return call()
    except BeamIOError as e:
        inner = e
        while isinstance(getattr(inner, "exception_details", None), dict) and inner.exception_details:
            inner = next(iter(inner.exception_details.values()))
        if isinstance(inner, FileNotFoundError) or getattr(inner, "code", None) == 404:
            raise FileNotFoundError(errno.ENOENT, "no such file", path) from e
        raise StorageError(f"{path}: {type(inner).__name__}: {inner}".splitlines()[0]) from e
