"""Classifiers from a pretrained checkpoint folder (model.safetensors + config.json + tokenizer.json)."""

from __future__ import annotations

from pathlib import Path

import torch

from model.config import ModelConfig
from model.heads import SequenceClassifier
from model.io import load_pretrained, read_config

INITS = ("pretrained", "random")


def model_config(checkpoint: str | Path) -> ModelConfig:
    """The checkpoint's ModelConfig (from its config.json, written by model.io.save_pretrained)."""
    return read_config(checkpoint)[0]


def build(checkpoint: str | Path, num_labels: int, init: str, dropout: float) -> torch.nn.Module:
    """A sequence classifier with a fresh head: the pretrained encoder, or (init="random") the same
    architecture with random weights, the no-pretraining baseline. Seed torch before calling."""
    if init == "pretrained":
        return load_pretrained(checkpoint, kind="classifier", num_labels=num_labels, dropout=dropout)
    if init == "random":
        return SequenceClassifier(model_config(checkpoint).replace(dropout=dropout), num_labels)
    raise ValueError(f"init must be one of {INITS}, not {init!r}")
