"""Duplicates: minhash.py signs the word n-gram shingles of each document with MinHash (numpy, in batches) as
the scan stages it, and dedup.py decides the exact and near duplicates from the small records the scan staged,
so that only one document of each cluster goes on."""
