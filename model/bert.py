"""The encoder body shared by every head: embeddings, self-attention, FFN, blocks (crammed or BERT).

Imports torch only: model.io copies this file verbatim into every exported crammed model folder, where
modeling_crammed.py builds the transformers classes on it, so cramkit and transformers run the same code.
`cfg` is cramkit's ModelConfig or that folder's CrammedConfig: the same field names, and `cfg.crammed`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoid(length: int, dim: int) -> torch.Tensor:
    """The fixed [length, dim] position table: sin on even channels, cos on odd, base 10000."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)
    return table


class Embeddings(nn.Module):
    """Token (+ position, + token type) embeddings, then LayerNorm and dropout."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg.hidden_size
        if cfg.vocab_size is None:
            raise ValueError("vocab_size is unset: train.py takes it from the shard set; elsewhere pin it "
                             "(vocab_size=N)")
        self.word = nn.Embedding(cfg.vocab_size, d, padding_idx=cfg.pad_token_id)
        if cfg.crammed:
            self.register_buffer("sinusoid", sinusoid(cfg.max_seq_len, d), persistent=False)
            self.position_scale = nn.Parameter(torch.tensor(d ** -0.5))
        self.position = None if cfg.crammed else nn.Embedding(cfg.max_seq_len, d)
        self.token_type = nn.Embedding(cfg.type_vocab_size, d) if cfg.type_vocab_size else None
        self.norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        seq_len = input_ids.shape[1]
        x = self.word(input_ids)
        if self.position is None:
            x = x + self.sinusoid[:seq_len] * self.position_scale
        else:
            x = x + self.position.weight[:seq_len]
        if self.token_type is not None:
            x = x + (self.token_type.weight[0] if token_type_ids is None else self.token_type(token_type_ids))
        return self.drop(self.norm(x))


class SelfAttention(nn.Module):
    """Multi-head self-attention: one fused QKV projection, SDPA, an output projection."""

    def __init__(self, cfg, bias: bool):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=bias)
        self.out = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, seq_len, d = x.shape
        q, k, v = self.qkv(x).view(batch, seq_len, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, seq_len, d))


class FeedForward(nn.Module):
    """Crammed: Linear(d, I) split into value and gate halves, value * GELU(gate), Linear(I/2, d).
    BERT: Linear(d, I), GELU, Linear(I, d)."""

    def __init__(self, cfg, bias: bool):
        super().__init__()
        self.gated = cfg.crammed
        inner = cfg.intermediate_size // 2 if self.gated else cfg.intermediate_size
        self.up = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=bias)
        self.down = nn.Linear(inner, cfg.hidden_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.gated:
            value, gate = h.chunk(2, dim=-1)
            h = value * F.gelu(gate)
        else:
            h = F.gelu(h)
        return self.down(h)


class Block(nn.Module):
    """Attention then FFN, each residual; pre-LN (crammed) or post-LN (BERT)."""

    def __init__(self, cfg):
        super().__init__()
        self.pre_norm = cfg.crammed
        bias = not cfg.crammed
        self.attn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps)
        self.attn = SelfAttention(cfg, bias)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps)
        self.ffn = FeedForward(cfg, bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.drop(self.attn(self.attn_norm(x), mask))
            return x + self.drop(self.ffn(self.ffn_norm(x)))
        x = self.attn_norm(x + self.drop(self.attn(x, mask)))
        return self.ffn_norm(x + self.drop(self.ffn(x)))


class Encoder(nn.Module):
    """Embeddings, the blocks, and (crammed) a final LayerNorm: input ids [B, S] -> hidden [B, S, d]."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embeddings = Embeddings(cfg)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.final_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps) if cfg.crammed else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        """attention_mask [B, S]: 1 for real tokens, 0 for padding (keys at 0 are not attended to).
        token_type_ids are ignored by a config without token types (type_vocab_size=0).
        segment_ids [B, S]: the document of each token in a packed row (the shards' segment_ids column);
        given, a token attends only to tokens of its own document (see `sdpa_mask`)."""
        if input_ids.shape[1] > self.cfg.max_seq_len:
            raise ValueError(f"input has {input_ids.shape[1]} positions, more than the config's max_seq_len="
                             f"{self.cfg.max_seq_len}; truncate the input or build a model with a longer one")
        if segment_ids is not None and segment_ids.shape != input_ids.shape:
            raise ValueError(f"segment_ids {tuple(segment_ids.shape)} must have the shape of input_ids "
                             f"{tuple(input_ids.shape)}")
        mask = sdpa_mask(attention_mask, segment_ids)
        x = self.embeddings(input_ids, token_type_ids)
        for layer in self.layers:
            x = layer(x, mask)
        return x if self.final_norm is None else self.final_norm(x)


def sdpa_mask(attention_mask: torch.Tensor | None, segment_ids: torch.Tensor | None) -> torch.Tensor | None:
    """The boolean SDPA mask (True: may attend) from a padding mask [B, S] and document ids [B, S]: None
    (attend everywhere), [B, 1, 1, S] (padding only) or the block-diagonal [B, 1, S, S] of the documents,
    without padded keys. With documents every token also sees itself, so no query row is empty (an
    empty row gives NaN, which would reach the real tokens through the values of the next layer)."""
    keys = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
    if segment_ids is None:
        return keys
    mask = segment_ids[:, None, :, None] == segment_ids[:, None, None, :]
    if keys is not None:
        mask = mask & keys
    return mask | torch.eye(segment_ids.shape[1], dtype=torch.bool, device=segment_ids.device)


def pool_tokens(hidden: torch.Tensor, attention_mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """[B, d] from hidden states [B, S, d]: the first token (how="first") or the mean of the unpadded ones."""
    if how == "first":
        return hidden[:, 0]
    if attention_mask is None:
        return hidden.mean(dim=1)
    weight = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)


def init_weights(module: nn.Module, std: float) -> None:
    """normal(0, std) for every Linear and Embedding weight, zero biases and padding row, LayerNorm 1/0."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, 0.0, std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
