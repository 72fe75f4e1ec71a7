"""Text normalizers and the Normalize stage.

Presets:
- `cramming`: NFD -> lowercase -> strip accents -> delete non-ASCII -> collapse runs of spaces. The same
  steps, in the same order, as the tokenizer's HF normalizer (`pipeline.tokens.tokenize.cramming_normalizer`);
  a test holds the two equal on real and adversarial text.
- `cased`: NFKC, line endings to "\\n", other whitespace to spaces, runs of spaces collapsed, spaces at
  line ends removed, at most one blank line in a row, no leading or trailing blank space.
- `none`: the text as read.

A document that is empty after normalizing is dropped as "normalize/empty" (pipeline.graph.scan).
"""

import re
import unicodedata
from dataclasses import dataclass

from configs import setting

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

    preset: str = setting("cramming (lowercase, no accents, ASCII) | cased (NFKC, tidy whitespace) | none",
                          "cramming")

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"normalize.preset={self.preset!r}: choose one of {', '.join(PRESETS)}")
