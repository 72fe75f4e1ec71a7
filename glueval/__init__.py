"""GLUE evaluation: task table, data readers, metrics, fine-tuning loop and report (CLI: glue.py)."""
