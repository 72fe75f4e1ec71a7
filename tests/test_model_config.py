"""ModelConfig: presets from configs/model, overrides, validation that names the bad field."""

import pytest

import configs
from model import tokenizer
from model.config import ModelConfig
from model.flops import param_count
from model.heads import MaskedLM


def test_presets_are_the_yaml_files():
    assert set(configs.presets("model")) >= {"crammed-bert", "bert-base", "tiny", "tiny-2"}


def test_crammed_bert_is_crammings_final_architecture():
    cfg = ModelConfig.preset("crammed-bert")
    assert (cfg.arch, cfg.num_layers, cfg.hidden_size, cfg.num_heads) == ("crammed", 16, 768, 12)
    assert (cfg.intermediate_size, cfg.vocab_size, cfg.max_seq_len) == (3072, None, 128)  # the shards' vocabulary
    assert (cfg.dropout, cfg.type_vocab_size, cfg.head_dim, cfg.pool) == (0.0, 0, 1024, "first")
    assert (cfg.init_std, cfg.norm_eps, cfg.pad_token_id) == (0.02, 1e-12, 0)


def test_tiny_presets_are_crammed_and_small():
    tiny, tiny2 = ModelConfig.preset("tiny"), ModelConfig.preset("tiny-2")
    assert (tiny.arch, tiny.num_layers, tiny.hidden_size, tiny.num_heads) == ("crammed", 4, 256, 4)
    assert tiny2.arch == "crammed" and tiny2.hidden_size < tiny.hidden_size


def test_bert_base_preset():
    cfg = ModelConfig.preset("bert-base")
    assert (cfg.arch, cfg.num_layers, cfg.hidden_size, cfg.vocab_size, cfg.max_seq_len) == ("bert", 12, 768, 30522, 512)
    assert cfg.type_vocab_size == 2 and cfg.head_dim == 768


def test_overrides_and_dict_round_trip():
    cfg = ModelConfig.preset("tiny", dropout=0.1, vocab_size=1000)
    assert cfg.dropout == 0.1 and cfg.vocab_size == 1000 and cfg.hidden_size == 256
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(num_layers=2).num_layers == 2


def test_preset_from_a_yaml_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text((configs.CONFIG_DIR / "model" / "tiny-2.yaml").read_text().replace("num_layers: 2", "num_layers: 3"))
    assert ModelConfig.preset(str(path)).num_layers == 3


def test_unknown_preset_names_it_and_lists_the_known():
    with pytest.raises(ValueError, match="'bert-huge': no such model config; presets: .*crammed-bert"):
        ModelConfig.preset("bert-huge")


def test_unknown_field_is_named():
    with pytest.raises(ValueError, match="hiden_size: unknown key; the model config has arch, "):
        ModelConfig.preset("tiny", hiden_size=128)


def test_missing_field_is_named():
    values = ModelConfig.preset("tiny").to_dict()
    del values["num_heads"]
    with pytest.raises(ValueError, match=r"missing ModelConfig field\(s\) \['num_heads'\]"):
        ModelConfig.from_dict(values)


def test_hidden_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"hidden_size \(256\) must be divisible by num_heads \(3\)"):
        ModelConfig.preset("tiny", num_heads=3)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("hidden_size", "256", "hidden_size='256': expected an integer"),
    ("num_layers", True, "num_layers=True: expected an integer"),
    ("dropout", "0.1", "dropout='0.1': expected a number"),
    ("dropout", 1.0, r"dropout must be in \[0, 1\)"),
    ("arch", "gpt", "arch must be one of"),
    ("pool", "max", "pool must be one of"),
    ("num_layers", 0, "num_layers must be >= 1"),
    ("pad_token_id", 40000, "pad_token_id"),
    ("intermediate_size", 1023, "intermediate_size .* must be even"),
])
def test_bad_values_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig.preset("tiny-2", **{field: value})


def test_vocab_size_unset_takes_the_tokenizers_and_a_pin_is_kept_or_refused():
    unset = ModelConfig.preset("tiny")
    assert unset.vocab_size is None
    with pytest.raises(ValueError, match="vocab_size is unset"):
        MaskedLM(unset)
    assert tokenizer.fit_vocab(unset, 4096, "manifest.json", "fix it") == (unset.replace(vocab_size=4096), None)
    pinned = ModelConfig.preset("tiny", vocab_size=8192)
    assert tokenizer.fit_vocab(pinned, 8192, "manifest.json", "fix it") == (pinned, None)
    kept, note = tokenizer.fit_vocab(pinned, 4096, "manifest.json", "fix it")
    unused = param_count(pinned) - param_count(pinned.replace(vocab_size=4096))
    assert kept == pinned and unused == 4096 * 256  # the decoder is tied: the embedding rows only
    assert note.startswith(f"note: the model pins vocab_size 8,192 and manifest.json has 4,096 tokens: 4,096 embedding "
                           f"rows ({unused:,} parameters) are never used")
    bert = ModelConfig.preset("bert-base")  # its decoder bias has a value per token too
    assert f"({(30522 - 30000) * (768 + 1):,} parameters)" in tokenizer.fit_vocab(bert, 30000, "m", "")[1]
    with pytest.raises(tokenizer.TokenizerError, match="the tokenizer has 9000 tokens but the model's embedding has "
                       "8192 rows.*fix it"):
        tokenizer.fit_vocab(pinned, 9000, "manifest.json", "fix it")


def test_yaml_must_be_a_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="bad.yaml: expected a mapping"):
        ModelConfig.preset(str(path))
