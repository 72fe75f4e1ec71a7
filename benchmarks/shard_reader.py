"""Shard reader throughput, side by side with Hugging Face `datasets` reading the same Arrow files
(`Dataset.from_file` per shard + `concatenate_datasets`, numpy format), in one run, as ratios.

Sequential: an epoch in batches as written (`Batches(shard_set, bs)` vs `ds[i:i+bs]`); random: the same
number of rows in seeded-shuffle batches (`Batches(shard_set, bs, shuffle=True)` vs `ds[idx]`). Both on a
ShardSet whose shards are mapped already; the first epoch of a fresh one also maps each shard and checks
its token ids against vocab_size (one vectorised max per shard), timed apart.

    PYTHONPATH=. .venv/bin/python benchmarks/shard_reader.py [--rows 1000000] [--batch-size 4096]
"""

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np

from pipeline.tokens import shards
from trainer.batches import Batches

OUT = Path(__file__).resolve().parent / "results" / "shard_reader.md"
SEQ = 128


def make_set(folder: Path, rows: int, per_shard: int) -> Path:
    rng = np.random.default_rng(0)
    entries = []
    for i, start in enumerate(range(0, rows, per_shard)):
        n = min(per_shard, rows - start)
        block = rng.integers(0, 32768, size=(n, SEQ), dtype=np.uint16)
        entries.append(shards.write_shard(folder / shards.SHARD_NAME.format(i), block))
    (folder / shards.TOKENIZER).write_text("{}")
    shards.write_manifest(folder, seq_len=SEQ, vocab_size=32768, shards=entries, config={"bench": rows},
                          order={"name": "none"}, packing={}, counts={}, tokens={})
    return folder


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--per-shard", type=int, default=262_144)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    bs, n = args.batch_size, args.rows
    steps = n // bs

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_set(Path(tmp), n, args.per_shard)
        t_open = timed(lambda: shards.ShardSet(folder))
        t_verify = timed(lambda: shards.ShardSet(folder, verify=True))
        ds = shards.ShardSet(folder)

        def first_epoch():
            it = Batches(shards.ShardSet(folder), bs)
            for _ in range(steps):
                next(it)

        def id_check():
            for s in range(len(ds.manifest["shards"])):
                int(ds._shard(s)["input_ids"].max())
        files = [str(folder / s["file"]) for s in ds.manifest["shards"]]
        hf = datasets.concatenate_datasets([datasets.Dataset.from_file(f) for f in files]).with_format("numpy")

        def ours_seq():
            it = Batches(ds, bs)
            for _ in range(steps):
                next(it)

        def ours_rand():
            it = Batches(ds, bs, shuffle=True, seed=1)
            for _ in range(steps):
                next(it)

        def hf_seq():
            for s in range(steps):
                hf[s * bs : (s + 1) * bs]["input_ids"]

        perm = np.random.default_rng(1).permutation(n)

        def hf_rand():
            for s in range(steps):
                hf[perm[s * bs : (s + 1) * bs]]["input_ids"]

        # HF's random access is slow: time it on fewer steps and scale (stated in the table)
        hf_rand_steps = min(steps, 20)

        def hf_rand_short():
            for s in range(hf_rand_steps):
                hf[perm[s * bs : (s + 1) * bs]]["input_ids"]

        check = next(Batches(ds, bs))
        np.testing.assert_array_equal(check, hf[0:bs]["input_ids"])
        best = {"seq": [], "rand": [], "hf_seq": [], "hf_rand": [], "first": [], "check": []}
        for _ in range(args.rounds):  # interleaved
            best["first"].append(steps * bs / timed(first_epoch))
            best["check"].append(timed(id_check))
            best["seq"].append(steps * bs / timed(ours_seq))
            best["hf_seq"].append(steps * bs / timed(hf_seq))
            best["rand"].append(steps * bs / timed(ours_rand))
            best["hf_rand"].append(hf_rand_steps * bs / timed(hf_rand_short))
        med = {k: float(np.median(v)) for k, v in best.items()}

    cmd = (f"PYTHONPATH=. .venv/bin/python benchmarks/shard_reader.py --rows {n} --batch-size {bs} "
           f"--rounds {args.rounds}")
    lines = [
        "# Shard reader: cramkit ShardSet vs Hugging Face datasets on the same shards",
        "",
        f"{n:,} rows x {SEQ} uint16 ({n * SEQ * 2 / 1e6:.0f} MB) in {len(files)} Arrow stream shards (page cache "
        f"warm), batches of {bs}; median of {args.rounds} interleaved rounds. Peer: "
        "`datasets.Dataset.from_file` per shard, `concatenate_datasets`, numpy format, slices / index arrays "
        f"(its random path timed on {hf_rand_steps} batches).",
        "",
        "| read | cramkit rows/s | datasets rows/s | ratio |",
        "|---|---|---|---|",
        f"| sequential | {med['seq']:,.0f} | {med['hf_seq']:,.0f} | {med['seq'] / med['hf_seq']:.1f}x |",
        f"| random (seeded shuffle) | {med['rand']:,.0f} | {med['hf_rand']:,.0f} | "
        f"{med['rand'] / med['hf_rand']:.1f}x |",
        f"| sequential, first epoch of a fresh ShardSet (maps and id-checks every shard) | {med['first']:,.0f} | | |",
        "",
        f"Token-id check (max id per shard < the manifest's vocab_size, once per shard and process when it is "
        f"first mapped): {med['check'] * 1e3:.1f} ms for {n * SEQ * 2 / 1e6:.0f} MB "
        f"({n * SEQ * 2 / 1e9 / med['check']:.1f} GB/s).",
        "",
        f"Goal: sequential >= 1M rows/s -> **{med['seq'] / 1e6:.1f}M rows/s**. Open with the manifest size "
        f"check: {t_open * 1e3:.1f} ms; with `verify=True` (sha256 of every shard and the tokenizer, 4 threads, "
        f"then the id check): {t_verify:.2f} s ({n * SEQ * 2 / 1e6 / t_verify:.0f} MB/s).",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: 2-core x86_64 VM, CPU ({platform.machine()}), shared with other jobs (load averages 1/5/15 min "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} at the end).",
    ]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
