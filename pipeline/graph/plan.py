"""The plan of a run: what the launcher decides before the pipeline starts (folders, work units,
partition counts, the tokenizer sample's threshold, the creation time), and where every stage's files
live. Every worker receives the same Plan, so nothing depends on a worker's own disk or clock.

Partition counts follow the input size (more partitions for more data), never the runner or the number
of workers, and no decision depends on them: the output is the same for any count.
"""

import math
from dataclasses import dataclass

import numpy as np

from pipeline.duplicates import minhash
from pipeline.files import storage
from pipeline.reading.inputs import Inputs

STAGES = ("read", "normalize", "filter", "decontam", "exact", "near", "quality", "clean", "shards")
PART_BYTES = 256_000_000  # input bytes per exact-dedup / edge partition
BAND_PART_BYTES = 1_000_000_000  # input bytes per partition of each MinHash band
COMPRESSED_RATIO = 4  # assumed text bytes per byte of a .gz / .zst file, for the sample threshold


@dataclass(frozen=True)
class Plan:
    out: str  # where the final files go (a local run's staging folder, renamed into place at the end)
    stage: str  # intermediate files, deleted at the end
    until: str
    units: int
    input_bytes: int
    unit_starts: tuple  # first document id of each unit
    exact_parts: int
    band_parts: int  # per band
    edge_parts: int
    sample_below: int  # documents whose sample hash is below this go to the tokenizer sample
    created: str  # the manifest's creation time (ISO 8601, UTC)

    def unit_of(self, ids: np.ndarray) -> np.ndarray:
        """The unit index of each document id."""
        return np.searchsorted(np.asarray(self.unit_starts, dtype=np.int64), ids, side="right") - 1

    def path(self, *parts: str) -> str:
        return storage.join(self.stage, *parts)

    def unit_file(self, unit: int, name: str) -> str:
        return self.path(f"u{unit:06d}", name)


def make(inputs: Inputs, out: str, stage: str, until: str, sample_chars: int, created: str) -> Plan:
    text_bytes = sum(u.size * (COMPRESSED_RATIO if u.files[0].path.endswith((".gz", ".zst")) else 1)
                     for u in inputs.units)
    fraction = min(1.0, 2.0 * sample_chars / max(text_bytes, 1))  # 2x: filters and dedup remove some
    return Plan(out=out, stage=stage, until=until, units=len(inputs.units), input_bytes=inputs.bytes,
                unit_starts=tuple(u.first_id for u in inputs.units),
                exact_parts=max(1, math.ceil(inputs.bytes / PART_BYTES)),
                band_parts=max(1, math.ceil(inputs.bytes / BAND_PART_BYTES)),
                edge_parts=max(1, math.ceil(inputs.bytes / PART_BYTES)),
                sample_below=min(int(fraction * 2.0**64), 2**64 - 1), created=created)


def sample_hash(ids: np.ndarray) -> np.ndarray:
    """A uniform 64-bit hash of document ids: the order in which the tokenizer samples documents."""
    return minhash.mix64(ids.astype(np.uint64))
