"""Parameter counts and training FLOPs per token, computed from a ModelConfig (no model is built).

FLOPs count matmuls only (2 per multiply-add), which is what a GPU's dense peak measures: every encoder
linear on every token, the MLM head only on the predicted fraction of tokens, attention scores and
values (QK^T and AV) over the whole row. Backward costs twice the forward, so training is 3x forward.
Embedding lookups, LayerNorm, activations and softmax are not matmuls and are left out.
"""

from __future__ import annotations

from model.config import ModelConfig


def layer_matmul_params(cfg: ModelConfig) -> int:
    """Weights of one block's linears: QKV, attention output, FFN up and down."""
    d, inner = cfg.hidden_size, cfg.intermediate_size
    down = inner // 2 if cfg.crammed else inner
    return 3 * d * d + d * d + d * inner + down * d


def head_matmul_params(cfg: ModelConfig) -> int:
    """Weights the MLM head multiplies per predicted token: the (BERT) transform and the tied decoder."""
    transform = 0 if cfg.crammed else cfg.hidden_size ** 2
    return transform + cfg.hidden_size * cfg.vocab_size


def train_flops_per_token(cfg: ModelConfig, masked_fraction: float = 0.25, seq_len: int | None = None) -> float:
    """Forward + backward matmul FLOPs per input token of MaskedLM training at seq_len (default
    cfg.max_seq_len), with the decoder run on masked_fraction of the tokens (1.0 = dense head)."""
    if not 0.0 < masked_fraction <= 1.0:
        raise ValueError(f"masked_fraction must be in (0, 1], got {masked_fraction}")
    seq_len = cfg.max_seq_len if seq_len is None else seq_len
    linear = 2 * (cfg.num_layers * layer_matmul_params(cfg) + masked_fraction * head_matmul_params(cfg))
    attention = cfg.num_layers * 2 * (2 * seq_len * cfg.hidden_size)  # QK^T and AV, per query token
    return 3.0 * (linear + attention)


def param_count(cfg: ModelConfig, non_embedding: bool = False) -> int:
    """Parameters of MaskedLM(cfg) (the tied decoder counted once); non_embedding drops the token,
    position and token-type embeddings."""
    d = cfg.hidden_size
    layer = layer_matmul_params(cfg) + 2 * 2 * d  # linears, two LayerNorms
    if not cfg.crammed:
        layer += 3 * d + d + cfg.intermediate_size + d  # biases
    embeddings = (cfg.vocab_size + cfg.type_vocab_size + (0 if cfg.crammed else cfg.max_seq_len)) * d
    rest = 2 * d  # embedding LayerNorm
    if cfg.crammed:
        rest += 1 + 2 * d  # position scale, final LayerNorm
    else:
        rest += d * d + d + 2 * d + cfg.vocab_size  # MLM transform (dense, LayerNorm), decoder bias
    total = embeddings + cfg.num_layers * layer + rest
    return total - embeddings if non_embedding else total
