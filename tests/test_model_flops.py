"""Parameter counts and FLOPs per token against the built modules and torch's own FLOP counter."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import configs
from model.config import ModelConfig
from model.flops import param_count, train_flops_per_token
from model.heads import MaskedLM


@pytest.mark.parametrize("name", configs.presets("model"))
def test_param_count_equals_the_module(name):
    cfg = ModelConfig.preset(name)
    model = MaskedLM(cfg if cfg.vocab_size else cfg.replace(vocab_size=8192))
    assert param_count(model.cfg) == sum(p.numel() for p in model.parameters())
    embeddings = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    assert param_count(model.cfg, non_embedding=True) == param_count(model.cfg) - embeddings


def test_crammed_bert_size_matches_the_published_architecture():
    cfg = ModelConfig.preset("crammed-bert", vocab_size=32768)
    # 32768 x 768 embedding + 16 x (5,898,240 linear + 3,072 LayerNorm) + 2 LayerNorms + the position scale
    assert param_count(cfg) == 119_589_889
    assert train_flops_per_token(cfg) == pytest.approx(0.6229e9, rel=1e-4)


@pytest.mark.parametrize(("arch", "k"), [("tiny-2", 16), ("bert-base", 16), ("tiny-2", 64)])
def test_train_flops_match_torch_flop_counter(arch, k):
    """Forward + backward of the real module, counted op by op (attention via the math kernel so that its
    matmuls are visible), equals the formula exactly."""
    cfg = ModelConfig.preset(arch, max_seq_len=64, num_layers=2, vocab_size=1000, hidden_size=128,
                             num_heads=4, intermediate_size=256, head_dim=128)
    model = MaskedLM(cfg)
    rows, seq = 4, 64
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, cfg.vocab_size, (rows, seq), generator=g)
    positions = torch.stack([torch.randperm(seq, generator=g)[:k] for _ in range(rows)])
    targets = torch.randint(0, cfg.vocab_size, (rows, k), generator=g)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(ids, positions, targets).backward()
    assert counter.get_total_flops() == train_flops_per_token(cfg, k / seq) * rows * seq


def test_sparse_head_is_cheaper_and_fraction_is_checked():
    cfg = ModelConfig.preset("tiny", vocab_size=32768)
    assert train_flops_per_token(cfg, 0.25) < train_flops_per_token(cfg, 1.0)
    assert train_flops_per_token(cfg, seq_len=64) < train_flops_per_token(cfg)
    with pytest.raises(ValueError, match="masked_fraction must be in"):
        train_flops_per_token(cfg, 0.0)


def test_command_prints_every_preset(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    from model.__main__ import main

    main(["crammed-bert", "tiny"])
    out = capsys.readouterr().out
    assert "119,589,889" in out and "0.6229" in out and "tiny" in out
    main(["tiny-2", "--show-config"])
    shown = capsys.readouterr().out
    assert shown.startswith("# tiny-2\narch: crammed ") and "\nvocab_size: 4096 " in shown
