"""The records that flow through the corpus pipeline."""

from typing import NamedTuple


class Doc(NamedTuple):
    """One document. `id` is stable and sortable: "<source>:<path relative to its input>:<offset>"
    with a zero-padded offset, so "keep the lowest id" means the same document on every runner."""

    id: str
    text: str


class Drop(NamedTuple):
    """A document that left the pipeline: which one, why ("<stage>/<rule>"), and its size in chars."""

    id: str
    reason: str
    chars: int


DROPPED = "dropped"  # tag of the side output that carries Drop records out of every stage


class EmptyCorpus(Exception):
    """Every document was filtered away before a stage that needs text: nothing valid can be written."""
