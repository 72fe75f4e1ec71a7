"""Task heads on the shared encoder: masked LM with sparse prediction, sequence classification/regression."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.bert import Encoder, init_weights, pool_tokens
from model.config import ModelConfig


class MaskedLM(nn.Module):
    """Encoder + MLM decoder tied to the input embedding (BERT adds a dense+GELU+LN transform and a bias).

    forward() predicts only the k gathered positions of each row (sparse prediction): with a fixed k per
    row the shapes are static, and the decoder, the largest matmul, runs on k/S of the tokens.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        d = cfg.hidden_size
        if cfg.crammed:
            self.transform = None
            self.decoder_bias = None
        else:
            self.transform = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d, eps=cfg.norm_eps))
            self.decoder_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.apply(lambda m: init_weights(m, cfg.init_std))

    def predict(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits [..., V] for hidden states [..., d]."""
        if self.transform is not None:
            hidden = self.transform(hidden)
        return F.linear(hidden, self.encoder.embeddings.word.weight, self.decoder_bias)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, targets: torch.Tensor,
                attention_mask: torch.Tensor | None = None, segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy over the masked positions [B, k] (targets [B, k]; -100 is ignored);
        `segment_ids` keep attention within documents (see Encoder)."""
        if positions.shape != targets.shape or positions.shape[0] != input_ids.shape[0]:
            raise ValueError(f"positions {tuple(positions.shape)} and targets {tuple(targets.shape)} must "
                             f"both be [batch={input_ids.shape[0]}, k]")
        hidden = self.encoder(input_ids, attention_mask, segment_ids=segment_ids)
        picked = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        logits = self.predict(picked)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None, segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Dense logits [B, S, V] at every position."""
        return self.predict(self.encoder(input_ids, attention_mask, token_type_ids, segment_ids))


class SequenceClassifier(nn.Module):
    """Encoder + pooled head: first token (or masked mean) -> Linear(d, head_dim) -> tanh -> dropout ->
    Linear(head_dim, num_labels). num_labels=1 is regression. For arch="bert" with head_dim=hidden this is
    BERT's pooler + classifier."""

    def __init__(self, cfg: ModelConfig, num_labels: int):
        super().__init__()
        if not isinstance(num_labels, int) or num_labels < 1:
            raise ValueError(f"num_labels must be an integer >= 1 (1 = regression), got {num_labels!r}")
        self.cfg = cfg
        self.num_labels = num_labels
        self.encoder = Encoder(cfg)
        self.pool = nn.Linear(cfg.hidden_size, cfg.head_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.head_dim, num_labels)
        self.apply(lambda m: init_weights(m, cfg.init_std))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.encoder(input_ids, attention_mask, token_type_ids)
        return self.out(self.drop(torch.tanh(self.pool(pool_tokens(hidden, attention_mask, self.cfg.pool)))))
