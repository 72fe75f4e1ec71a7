"""cramkit's corpus pipeline: raw files -> clean documents -> packed, tokenized Arrow shards.

Importing this package imports nothing heavy: Beam is only imported by the modules that build the
pipeline, so `pipeline.shards` (the shard reader) works on a machine without Beam.
"""
