"""The records that flow through the corpus pipeline."""

from typing import NamedTuple


class Doc(NamedTuple):
    """One document. `id` is its integer id (pipeline.reading.inputs: file number and offset), whose order is
    the order of "keep the lowest id"; `name` is the readable "<kind>:<relative path>:<offset>"; a web
    page keeps its `url` and crawl `date` (ISO 8601), "" elsewhere."""

    id: int
    name: str
    text: str
    url: str = ""
    date: str = ""


class Drop(NamedTuple):
    """A record that left the pipeline: which one, why ("<stage>/<rule>"), and its size (characters, or
    bytes for a record that was never decoded)."""

    name: str
    reason: str
    size: int


class EmptyCorpus(Exception):
    """Nothing was left to write: every input failed, or every document was filtered away."""
