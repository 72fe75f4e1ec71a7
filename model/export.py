"""`python -m model.export FOLDER [--out NEW]`: rewrite a cramkit checkpoint folder so that transformers loads it.

A crammed folder written before cramkit exported to transformers (config.json without `auto_map`) gets the
code files, the transformers keys in config.json and the tokenizer settings, in place or in --out; an
arch='bert' folder becomes a transformers BERT folder in --out (model.io.export_hf). The weights are the
same tensors, checked against the recorded sha256 on the way in. --out must be a new or empty folder or a
cramkit model folder: anything else is refused, and nothing in it is replaced.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from model.card import README
from model.io import TOKENIZER, CheckpointError, export_hf, load_pretrained, read_config, save_pretrained


def check_out(out: Path, folder: Path) -> None:
    """Refuse an `out` that holds anything but a cramkit model folder: export writes config.json, README.md,
    tokenizer.json and more there, and would replace a user's files (or a shard set's tokenizer)."""
    if out.resolve() == folder.resolve() or not out.exists():
        return
    if not out.is_dir():
        raise CheckpointError(f"--out {out}: is a file; export writes a folder: choose a new or empty folder")
    if any(out.iterdir()):
        try:
            read_config(out)
        except CheckpointError:
            raise CheckpointError(f"--out {out}: holds files and is not a cramkit model folder (no config.json "
                                  "with cramkit's record), so nothing is written there; choose a new or empty "
                                  "folder") from None


def export(folder: Path, out: Path | None = None) -> Path:
    """Re-export `folder` to `out` (default: in place for a crammed model; else a new or empty folder, or a
    cramkit model folder); returns the written folder."""
    cfg, meta = read_config(folder)
    if out is not None:
        check_out(out, folder)
    model = load_pretrained(folder, kind=meta.get("kind", "mlm"), num_labels=meta.get("num_labels"))
    tokenizer = folder / TOKENIZER if (folder / TOKENIZER).is_file() else None
    if not cfg.crammed:
        if out is None or out.resolve() == folder.resolve():
            raise CheckpointError(f"{folder}: an arch='bert' model exports to transformers' BERT layout, which "
                                  "cramkit does not load back; give --out NEW_FOLDER")
        return export_hf(model, out, tokenizer_file=tokenizer)
    out = save_pretrained(model, out or folder, tokenizer_file=tokenizer)
    if (folder / README).is_file() and out.resolve() != folder.resolve():
        shutil.copyfile(folder / README, out / README)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model.export", description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a folder written by train.py / model.io.save_pretrained")
    ap.add_argument("--out", type=Path, default=None, help="write here instead: a new or empty folder, or a "
                    "cramkit model folder (default: in place; required for arch='bert')")
    args = ap.parse_args(argv)
    try:
        out = export(args.folder, args.out)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out}: loads with transformers' Auto classes (trust_remote_code=True for a crammed model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
