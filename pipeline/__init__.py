"""cramkit's corpus pipeline: raw files -> clean documents -> packed, tokenized Arrow shards.

Importing this package imports nothing heavy: Beam is only imported by the modules that build the
pipeline, so `pipeline.tokens.shards` (the shard reader) works on a machine without Beam.

Its rooms, in the order of the chain: reading/ (inputs -> documents), cleaning/ (web cleaning, normalization,
filters, decontamination, quality scores), duplicates/ (exact and near), tokens/ (tokenizer, packing, order,
the shard format and its reader), graph/ (the plan, the Beam graph, stats and the finish); files/ (storage,
the record and lock of a folder) serves them all. __main__.py is the command, config.py composes every stage's
config and document.py holds the records that flow between the stages.
"""
