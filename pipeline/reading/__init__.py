"""Reading sources, the start of the chain: inputs.py turns the `--input` specs into numbered files and work
units (in the launcher, before Beam starts); sources.py turns one work unit into documents, cutting and
decoding its records with records.py (decompression, lines, blocks or whole files, the decoding policy),
reading WARC, WET and HTML files with web.py and the embedded default source with embedded.py. Every record
that does not become a document is dropped with its reason."""
