"""Tokens and shards: tokenize.py trains (or loads) the tokenizer and derives the ids packing needs; encode.py
turns each unit's kept documents into token ids (with the tokenizer-compression filter); pack.py packs them
into rows of `seq_len` tokens; order.py puts the rows in their curriculum order and writes the shards that
hold them; shards.py is the shard set itself, the contract between the pipeline and every trainer: its format,
manifest and reader (numpy and pyarrow only, no Beam)."""
