"""The encoder and heads: crammed structure, sparse MLM loss, padding mask, classifier, compile."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.bert import sinusoid
from model.config import ModelConfig
from model.heads import MaskedLM, SequenceClassifier


def small(arch="crammed", **overrides):
    base = "tiny-2" if arch == "crammed" else "bert-base"
    values = {"vocab_size": 300, "max_seq_len": 32, "hidden_size": 64, "num_layers": 2, "num_heads": 4,
              "intermediate_size": 128, **overrides}
    if arch == "bert":
        values["head_dim"] = values["hidden_size"]
    return ModelConfig.preset(base, **values)


def batch(cfg, rows=3, seq=32, k=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, cfg.vocab_size, (rows, seq), generator=g)
    positions = torch.stack([torch.randperm(seq, generator=g)[:k] for _ in range(rows)])
    targets = torch.randint(0, cfg.vocab_size, (rows, k), generator=g)
    return ids, positions, targets


def test_crammed_structure():
    cfg = small()
    model = MaskedLM(cfg)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears and all(m.bias is None for m in linears)  # QKV, out, FFN: no bias; no decoder module
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 1 + 2 * cfg.num_layers + 1  # embedding, two per block, final
    emb = model.encoder.embeddings
    assert emb.token_type is None and emb.position is None
    assert emb.position_scale.item() == pytest.approx(1 / math.sqrt(cfg.hidden_size))
    assert torch.equal(emb.word.weight[cfg.pad_token_id], torch.zeros(cfg.hidden_size))
    assert model.encoder.layers[0].ffn.up.weight.shape == (128, 64)
    assert model.encoder.layers[0].ffn.down.weight.shape == (64, 64)  # the GLU halves the width
    big = MaskedLM(ModelConfig.preset("tiny", vocab_size=32768))
    assert big.encoder.layers[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.02)


def test_decoder_is_tied_to_the_input_embedding():
    model = MaskedLM(small()).eval()
    ids = batch(model.cfg)[0].clamp(min=6)  # no input uses row 5
    with torch.no_grad():
        before = model.logits(ids)
        model.encoder.embeddings.word.weight[5] += 1.0
        after = model.logits(ids)
    assert not torch.allclose(before[..., 5], after[..., 5])  # the decoder row 5 moved with it
    assert torch.equal(before[..., :5], after[..., :5]) and torch.equal(before[..., 6:], after[..., 6:])
    assert "decoder" not in " ".join(n for n, _ in model.named_parameters())


def test_sinusoid_table():
    table = sinusoid(16, 8)
    assert torch.allclose(table[:, 0], torch.sin(torch.arange(16.0)))
    assert torch.allclose(table[:, 1], torch.cos(torch.arange(16.0)))
    assert torch.allclose(table[3, 2], torch.sin(torch.tensor(3.0) / 10000 ** (2 / 8)))


def test_gated_ffn_is_value_times_gelu_gate():
    ffn = MaskedLM(small()).encoder.layers[0].ffn
    x = torch.randn(2, 5, 64)
    value, gate = (x @ ffn.up.weight.T).chunk(2, dim=-1)
    assert torch.allclose(ffn(x), (value * F.gelu(gate)) @ ffn.down.weight.T, atol=1e-6)


@pytest.mark.parametrize("arch", ["crammed", "bert"])
def test_sparse_loss_equals_dense_logits_at_the_masked_positions(arch):
    model = MaskedLM(small(arch)).eval()
    ids, positions, targets = batch(model.cfg)
    targets[0, 0] = -100  # ignored
    with torch.no_grad():
        loss = model(ids, positions, targets)
        dense = model.logits(ids)
    picked = dense[torch.arange(3)[:, None], positions]
    assert torch.allclose(loss, F.cross_entropy(picked.flatten(0, 1), targets.flatten(), ignore_index=-100), atol=1e-5)


def test_mlm_shapes_are_checked():
    model = MaskedLM(small())
    ids, positions, targets = batch(model.cfg)
    with pytest.raises(ValueError, match="positions .* and targets .* must both be"):
        model(ids, positions, targets[:, :4])


def test_every_parameter_learns_from_the_sparse_loss():
    model = MaskedLM(small())
    model(*batch(model.cfg)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("arch", ["crammed", "bert"])
def test_padding_mask_hides_padded_keys(arch):
    model = MaskedLM(small(arch)).eval()
    ids = batch(model.cfg, seq=20)[0]
    mask = torch.ones_like(ids)
    mask[:, 12:] = 0
    other = ids.clone()
    other[:, 12:] = 7  # different padding content
    with torch.no_grad():
        a, b = model.logits(ids, mask), model.logits(other, mask)
        c = model.logits(other)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-5)
    assert not torch.allclose(a[:, :12], c[:, :12], atol=1e-3)  # without the mask the padding is seen


@pytest.mark.parametrize("arch", ["crammed", "bert"])
def test_segment_ids_keep_attention_within_each_document(arch):
    """A packed row with segment ids gives, at each document's tokens, what that document gives alone at
    the same positions (the others replaced by padding keys); without them the documents see each other."""
    model = MaskedLM(small(arch)).eval()
    ids = batch(model.cfg, rows=2, seq=24)[0]
    segments = torch.tensor([[0] * 7 + [1] * 12 + [2] * 5, [0] * 24])
    with torch.no_grad():
        packed = model.logits(ids, segment_ids=segments)
        for row in range(2):
            for doc in segments[row].unique():
                alone = model.logits(ids[row : row + 1], attention_mask=(segments[row : row + 1] == doc).long())
                where = segments[row] == doc
                assert torch.allclose(packed[row, where], alone[0, where], atol=1e-5), (row, doc)
        assert torch.allclose(packed[1], model.logits(ids[1:])[0], atol=1e-5)  # one document: no change
        ones = torch.ones_like(segments)  # all-one segments: the same as no segment ids at all
        assert torch.allclose(model.logits(ids, segment_ids=ones), model.logits(ids), atol=1e-5)
        assert not torch.allclose(packed[0], model.logits(ids[:1])[0], atol=1e-3)
        # other tokens in the middle document: the first and last documents' outputs stay as they were
        other = ids.clone()
        other[0, 7:19] = (other[0, 7:19] + 1) % model.cfg.vocab_size
        changed = model.logits(other, segment_ids=segments)
        keep = segments[0] != 1
        assert torch.allclose(changed[0, keep], packed[0, keep], atol=1e-5)
        assert not torch.allclose(changed[0, ~keep], packed[0, ~keep], atol=1e-3)
        unmasked = model.logits(other)  # without segment ids the change reaches every document
        assert (unmasked[0, keep] - model.logits(ids)[0, keep]).abs().max() > 1e-4  # 100x the tolerance above
        # with padding too: padded keys stay hidden and the padded queries do not turn into NaN
        mask = torch.ones_like(ids)
        mask[0, 19:] = 0
        both = model.logits(ids, mask, segment_ids=segments)
        assert torch.isfinite(both).all()
        assert torch.allclose(both[0, :19], packed[0, :19], atol=1e-5)
        sparse = model(ids, torch.tensor([[3, 10], [0, 5]]), torch.tensor([[1, 2], [3, 4]]), segment_ids=segments)
        dense = F.cross_entropy(packed[[0, 0, 1, 1], [3, 10, 0, 5]], torch.tensor([1, 2, 3, 4]))
        assert torch.allclose(sparse, dense, atol=1e-5)  # the MLM loss takes them too
    with pytest.raises(ValueError, match="segment_ids .* must have the shape of input_ids"):
        model.logits(ids, segment_ids=segments[:, :10])


def test_positions_matter_and_are_bounded():
    model = MaskedLM(small()).eval()
    ids = batch(model.cfg)[0]
    with torch.no_grad():
        out = model.logits(ids)
        flipped = model.logits(ids.flip(1)).flip(1)
    assert not torch.allclose(out, flipped, atol=1e-4)
    with pytest.raises(ValueError, match="more than the config's max_seq_len=32"):
        model.logits(torch.ones(1, 33, dtype=torch.long))


def test_token_types_only_where_configured():
    crammed, bert = MaskedLM(small()).eval(), MaskedLM(small("bert")).eval()
    ids = batch(crammed.cfg)[0]
    types = torch.zeros_like(ids)
    types[:, 10:] = 1
    with torch.no_grad():
        assert torch.equal(crammed.logits(ids, token_type_ids=types), crammed.logits(ids))
        assert not torch.allclose(bert.logits(ids, token_type_ids=types), bert.logits(ids))
        assert torch.allclose(bert.logits(ids, token_type_ids=torch.zeros_like(ids)), bert.logits(ids))


def test_classifier_head_is_first_token_tanh_linear():
    model = SequenceClassifier(small(), num_labels=3).eval()
    ids = batch(model.cfg)[0]
    assert model.pool.weight.shape == (128, 64) and model.out.weight.shape == (3, 128)  # head_dim 128
    with torch.no_grad():
        logits = model(ids)
        first = model.encoder(ids)[:, 0]
    assert logits.shape == (3, 3)
    assert torch.allclose(logits, model.out(torch.tanh(model.pool(first))), atol=1e-6)
    assert SequenceClassifier(small(), num_labels=1)(ids).shape == (3, 1)  # regression


def test_classifier_mean_pool_ignores_padding():
    model = SequenceClassifier(small(pool="mean"), num_labels=2).eval()
    ids = batch(model.cfg, seq=16)[0]
    mask = torch.ones_like(ids)
    mask[:, 10:] = 0
    other = ids.clone()
    other[:, 10:] = 9
    with torch.no_grad():
        assert torch.allclose(model(ids, mask), model(other, mask), atol=1e-5)


def test_dropout_only_in_train_mode():
    model = SequenceClassifier(small(dropout=0.1), num_labels=2)
    ids = batch(model.cfg)[0]
    torch.manual_seed(0)
    assert not torch.allclose(model(ids), model(ids))
    model.eval()
    assert torch.equal(model(ids), model(ids))


def test_bad_num_labels():
    with pytest.raises(ValueError, match="num_labels must be an integer >= 1"):
        SequenceClassifier(small(), num_labels=0)


@pytest.mark.slow
def test_compiles_fullgraph_and_matches_eager():
    cfg = small(num_layers=1, vocab_size=128)
    model = MaskedLM(cfg)
    inputs = batch(cfg, rows=2)
    compiled = torch.compile(model, fullgraph=True)  # fails on any graph break
    loss = compiled(*inputs)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    eager = model(*inputs)
    eager.backward()
    assert torch.allclose(loss, eager, atol=1e-5)
    for name, p in model.named_parameters():
        assert torch.allclose(grads[name], p.grad, atol=1e-5), name
