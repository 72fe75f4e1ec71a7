"""cramkit's models: crammed BERT and the original BERT (torch only)."""
