"""Cleaning and filtering, in the order a document meets them: webclean.py takes a crawl's boilerplate lines,
low-quality pages, blocked sites and personal data out (off for plain text); normalize.py normalizes the text;
filters.py applies one small rule per signal, language ID among them (langid.py, with the fastText model
fetch_langid.py puts into models/); decontam.py drops the documents that hold evaluation text, or cuts it out,
reading the evaluation sets with evalsets.py, and contamination.py reports what it found. After dedup,
quality.py scores each document against trusted reference text, one of its two models the word bigram
language model of wordlm.py."""
