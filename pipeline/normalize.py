"""Text normalizers and the Normalize stage.

Presets:
- `cramming`: NFD -> lowercase -> strip accents -> delete non-ASCII -> collapse runs of spaces. The same
  steps, in the same order, as the tokenizer's HF normalizer (`pipeline.tokenize.cramming_normalizer`);
  a test holds the two equal on real and adversarial text.
- `cased`: NFKC, line endings to "\\n", other whitespace to spaces, runs of spaces collapsed, spaces at
  line ends removed, at most one blank line in a row, no leading or trailing blank space.
- `none`: the text as read.

A document that is empty after normalizing is dropped as "normalize/empty".
"""

import re
import unicodedata
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.document import DROPPED, Doc, Drop
from pipeline.stats import SECONDS, timed

_NON_ASCII = re.compile(r"[^\x00-\x7F]+")
_SPACES = re.compile(" {2,}")
_HSPACE = re.compile(r"[^\S\n]+")  # whitespace other than a newline
_LINE_END_SPACE = re.compile(r" +\n")
_BLANK_LINES = re.compile(r"\n{3,}")


def cramming(text: str) -> str:
    """NFD, lowercase, strip accents (combining marks), delete non-ASCII, collapse runs of spaces."""
    text = unicodedata.normalize("NFD", text).lower()
    text = "".join(c for c in text if not unicodedata.combining(c)) if not text.isascii() else text
    return _SPACES.sub(" ", _NON_ASCII.sub("", text))


def cased(text: str) -> str:
    """NFKC plus whitespace cleanup; case, accents and non-ASCII letters are kept."""
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _LINE_END_SPACE.sub("\n", _HSPACE.sub(" ", text))
    return _BLANK_LINES.sub("\n\n", text).strip()


PRESETS = {"cramming": cramming, "cased": cased, "none": lambda text: text}


@dataclass(frozen=True)
class NormalizeConfig:
    """`normalize.*` in the corpus config."""

    preset: str = "cramming"  # cramming | cased | none

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"normalize.preset={self.preset!r}: choose one of {', '.join(PRESETS)}")


class _NormalizeFn(beam.DoFn):
    """A batch of documents -> normalized docs, Drops, and ("normalize", seconds) for the stats."""

    def __init__(self, preset: str):
        self.preset = preset
        self.empty = Metrics.counter("cramkit", "normalize/empty")

    def setup(self):
        self.fn = PRESETS[self.preset]

    def process(self, batch: list[Doc]):
        clock = [0.0]
        yield from timed(self._normalize(batch), clock)
        yield beam.pvalue.TaggedOutput(SECONDS, ("normalize", clock[0]))

    def _normalize(self, batch):
        for doc in batch:
            text = self.fn(doc.text)
            if text.strip():
                yield Doc(doc.id, text)
            else:
                self.empty.inc()
                yield beam.pvalue.TaggedOutput(DROPPED, Drop(doc.id, "normalize/empty", len(doc.text)))


class Normalize(beam.PTransform):
    """PCollection[Doc] -> (normalized docs, drops "normalize/empty"); `.seconds` (set by expand) holds
    ("normalize", seconds) per batch for the stats."""

    def __init__(self, cfg: NormalizeConfig = NormalizeConfig()):
        super().__init__()
        self.cfg = cfg
        self.seconds = None

    def expand(self, docs):
        out = (docs
               | "Batch" >> beam.BatchElements(min_batch_size=256, max_batch_size=256)
               | "Normalize" >> beam.ParDo(_NormalizeFn(self.cfg.preset)).with_outputs(
                   DROPPED, SECONDS, main="kept"))
        self.seconds = out[SECONDS]
        return out.kept, out[DROPPED]
