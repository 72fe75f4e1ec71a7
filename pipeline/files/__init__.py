"""Files, below every other room: storage.py reaches every file through Beam's FileSystems (local paths,
s3://, gs://, hdfs://, azfs://) and matches the inputs, walking local folders with walk.py; record.py is the
record of what cramkit wrote in a folder (all it ever deletes there) and lock.py the lock of a folder being
written. record.py and lock.py import no Beam: train.py and glue.py use them for their own folders too."""
