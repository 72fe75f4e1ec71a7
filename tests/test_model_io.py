"""save_pretrained / load_pretrained: exact round trips, compiled modules, encoder transfer, and refusals
(tampered weights, pickles, tensors that do not fit the config, a tokenizer that does not fit the model)."""

import json
import pickle

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, models

from model.config import ModelConfig
from model.heads import MaskedLM, SequenceClassifier
from model.io import CheckpointError, load_pretrained, save_pretrained


def cfg(**overrides):
    return ModelConfig.preset("tiny-2", vocab_size=500, max_seq_len=32, **overrides)


def perturbed(model):
    """Random values everywhere, so that a tensor loaded into the wrong place shows."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def tokenizer_file(path, size):
    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(size - 2)}}
    Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")).save(str(path))
    return path


IDS = torch.randint(1, 500, (2, 32), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch", ["crammed", "bert"])
def test_mlm_round_trip_is_exact(tmp_path, arch):
    config = cfg() if arch == "crammed" else ModelConfig.preset(
        "bert-base", vocab_size=500, max_seq_len=32, hidden_size=64, num_layers=2, num_heads=2,
        intermediate_size=128, head_dim=64)
    model = perturbed(MaskedLM(config)).eval()
    folder = save_pretrained(model, tmp_path / "ckpt", tokenizer_file=tokenizer_file(tmp_path / "t.json", 500))
    code = ["bert.py", "configuration_crammed.py", "modeling_crammed.py"] if arch == "crammed" else []
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", *code])
    loaded = load_pretrained(folder)
    assert loaded.cfg == config and not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    with torch.no_grad():
        assert torch.equal(model.logits(IDS), loaded.logits(IDS))


def test_classifier_round_trip_keeps_head_and_num_labels(tmp_path):
    model = perturbed(SequenceClassifier(cfg(), num_labels=3)).eval()
    save_pretrained(model, tmp_path)
    loaded = load_pretrained(tmp_path, kind="classifier")
    assert loaded.num_labels == 3
    with torch.no_grad():
        assert torch.equal(model(IDS), loaded(IDS))
    assert json.loads((tmp_path / "config.json").read_text())["cramkit"]["kind"] == "classifier"


def test_classifier_from_mlm_takes_encoder_and_a_fresh_head(tmp_path):
    mlm = perturbed(MaskedLM(cfg()))
    save_pretrained(mlm, tmp_path)
    clf = load_pretrained(tmp_path, kind="classifier", num_labels=2, dropout=0.1)
    assert clf.cfg.dropout == 0.1 and clf.num_labels == 2
    for name, tensor in mlm.encoder.state_dict().items():
        assert torch.equal(tensor, clf.encoder.state_dict()[name]), name
    assert clf.out.weight.shape == (2, cfg().head_dim)
    with pytest.raises(ValueError, match="needs num_labels"):
        load_pretrained(tmp_path, kind="classifier")
    with pytest.raises(ValueError, match="kind must be one of"):
        load_pretrained(tmp_path, kind="regression")


def test_compiled_module_saves_clean_names(tmp_path):
    model = perturbed(MaskedLM(cfg())).eval()
    compiled = torch.compile(model)
    assert any("_orig_mod." in k for k in compiled.state_dict())
    save_pretrained(compiled, tmp_path)
    names = load_file(tmp_path / "model.safetensors").keys()
    assert not any("_orig_mod" in k for k in names) and "encoder.embeddings.word.weight" in names
    with torch.no_grad():
        assert torch.equal(load_pretrained(tmp_path).logits(IDS), model.logits(IDS))


def test_overwrite_leaves_no_temporary_files(tmp_path):
    save_pretrained(MaskedLM(cfg()), tmp_path)
    save_pretrained(MaskedLM(cfg()), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bert.py", "config.json", "configuration_crammed.py", "model.safetensors", "modeling_crammed.py"]


def test_tampered_weights_are_refused(tmp_path):
    save_pretrained(MaskedLM(cfg()), tmp_path)
    data = bytearray((tmp_path / "model.safetensors").read_bytes())
    data[-3] ^= 0x01  # one bit in the tensor data; the safetensors header is still valid
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 differs"):
        load_pretrained(tmp_path)


def test_pickle_is_refused_and_never_unpickled(tmp_path, monkeypatch):
    model = MaskedLM(cfg())
    save_pretrained(model, tmp_path)
    weights = tmp_path / "model.safetensors"
    torch.save(model.state_dict(), weights)  # a pickle under the safetensors name, with a matching hash
    meta = json.loads((tmp_path / "config.json").read_text())
    import hashlib

    meta["cramkit"]["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (tmp_path / "config.json").write_text(json.dumps(meta))

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint was unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_pretrained(tmp_path)
    weights.rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"\['pytorch_model.bin'\] are pickle files"):
        load_pretrained(tmp_path)


def test_tensors_that_do_not_fit_the_config_are_named(tmp_path):
    save_pretrained(MaskedLM(cfg()), tmp_path)
    with pytest.raises(CheckpointError, match=r"tensor encoder.embeddings.word.weight has shape \(500, 128\) "
                                              r"but the config gives \(600, 128\)"):
        load_pretrained(tmp_path, vocab_size=600)
    with pytest.raises(CheckpointError, match=r"missing \[.*'encoder.layers.2.attn.qkv.weight'"):
        load_pretrained(tmp_path, num_layers=3)
    with pytest.raises(CheckpointError, match="missing .* unexpected .*encoder.embeddings.position_scale"):
        load_pretrained(tmp_path, arch="bert", type_vocab_size=2)


def test_bad_config_json_is_named(tmp_path):
    save_pretrained(MaskedLM(cfg()), tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**meta, "num_heads": 3}))
    with pytest.raises(CheckpointError, match=r"config.json.*hidden_size \(128\) must be divisible by num_heads \(3\)"):
        load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        load_pretrained(tmp_path)
    del meta["cramkit"]
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="no 'cramkit' entry.*saved by transformers"):
        load_pretrained(tmp_path)
    del meta["model_type"]
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not written by model.io.save_pretrained"):
        load_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_pretrained(tmp_path)


def test_tokenizer_larger_than_the_vocab_is_refused(tmp_path):
    model = MaskedLM(cfg())
    with pytest.raises(CheckpointError, match="has 800 tokens but the model's embedding has 500 rows"):
        save_pretrained(model, tmp_path / "a", tokenizer_file=tokenizer_file(tmp_path / "big.json", 800))
    save_pretrained(model, tmp_path / "b", tokenizer_file=tokenizer_file(tmp_path / "ok.json", 400))
    tokenizer_file(tmp_path / "b" / "tokenizer.json", 800)  # swapped afterwards
    with pytest.raises(CheckpointError, match="tokenizer.json: the tokenizer has 800 tokens"):
        load_pretrained(tmp_path / "b")
    (tmp_path / "b" / "tokenizer.json").write_text("garbage")
    with pytest.raises(CheckpointError, match="not a readable tokenizers JSON file"):
        load_pretrained(tmp_path / "b")


def test_saving_something_else_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="expected a model.heads.MaskedLM or SequenceClassifier"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path)
