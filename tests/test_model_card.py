"""The model card of a saved folder: what it states, and GLUE tables added, replaced and kept by key."""

import pytest

from model import card
from model.config import ModelConfig
from model.flops import param_count


def test_render_states_the_model_and_the_training_facts():
    cfg = ModelConfig.preset("tiny", vocab_size=8192)
    text = card.render(cfg, "mlm", {"data": "abc123", "budget": "10m", "tokens": 1929216, "steps": 377,
                                    "minutes": 10.0, "device": "cpu", "loss": 6.3651})
    for row in ("| data: content_hash of the shard manifest | `abc123` |", "| tokens seen | 1,929,216 |",
                "| optimizer steps | 377 |", "| budget | `10m` |", "| last training loss | 6.365 |",
                f"| parameters | {param_count(cfg):,} |", "| max sequence length | 128 |"):
        assert row in text
    assert 'AutoModelForMaskedLM.from_pretrained("PATH", trust_remote_code=True)' in text
    assert text.rstrip().endswith(card.GLUE_NONE)
    assert "trust_remote_code" not in card.render(ModelConfig.preset("bert-base"), "mlm", {})
    with pytest.raises(ValueError, match=r"unknown training fact\(s\) \['tokenz'\]"):
        card.render(cfg, "mlm", {"tokenz": 1})


def test_glue_tables_are_added_replaced_by_key_and_kept_in_order(tmp_path):
    assert card.update_glue(tmp_path, "sane", "| t |") is None  # no card: nothing written
    (tmp_path / card.README).write_text("# someone else's README\n")
    assert card.update_glue(tmp_path, "sane", "| t |") is None
    assert (tmp_path / card.README).read_text() == "# someone else's README\n"
    (tmp_path / card.README).write_text(card.render(ModelConfig.preset("tiny-2"), "mlm", {"steps": 3}))
    card.update_glue(tmp_path, "protocol sane, cramkit backend", "| first |")
    card.update_glue(tmp_path, "protocol sane, hf backend", "| second |")
    card.update_glue(tmp_path, "protocol sane, cramkit backend", "| first, again |")
    text = (tmp_path / card.README).read_text()
    assert card.GLUE_NONE not in text and "| first |" not in text and "| optimizer steps | 3 |" in text
    assert text.index("| first, again |") < text.index("| second |")  # replaced where it was
    assert text.count("### protocol sane") == 2 and text.count("<!-- /glue -->") == 2
