"""The bert-base preset against transformers' BERT (randomly initialised, weights copied through files):
same masked-LM logits and loss, same classification logits, and an export transformers loads as-is."""

import pytest
import torch

from model.config import ModelConfig
from model.heads import MaskedLM, SequenceClassifier
from model.io import export_hf, load_hf

transformers = pytest.importorskip("transformers")

TOL = 1e-5


def hf_config(cfg: ModelConfig, **extra):
    return transformers.BertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_seq_len, type_vocab_size=cfg.type_vocab_size,
        layer_norm_eps=cfg.norm_eps, pad_token_id=cfg.pad_token_id, **extra)


def inputs(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, cfg.vocab_size, (3, 40), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 25:] = 0
    mask[2, 33:] = 0
    types = torch.zeros_like(ids)
    types[:, 18:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@pytest.fixture(scope="module")
def bert_base():
    return ModelConfig.preset("bert-base")


@pytest.fixture(scope="module")
def hf_mlm_folder(bert_base, tmp_path_factory):
    torch.manual_seed(0)
    hf = transformers.BertForMaskedLM(hf_config(bert_base))
    with torch.no_grad():  # make the LayerNorms and biases non-trivial so that a swapped tensor shows
        for name, p in hf.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("hf-mlm")
    hf.save_pretrained(folder)
    return folder, hf.eval()


@pytest.fixture(scope="module")
def mlm_pair(hf_mlm_folder):
    folder, hf = hf_mlm_folder
    return hf, load_hf(folder, kind="mlm")


def test_masked_lm_logits_match_transformers(mlm_pair):
    hf, ours = mlm_pair
    assert isinstance(ours, MaskedLM) and ours.cfg == ModelConfig.preset("bert-base", dropout=0.1)
    batch = inputs(ours.cfg)
    with torch.no_grad():
        theirs, mine = hf(**batch).logits, ours.logits(**batch)
    real = batch["attention_mask"].bool()
    assert (theirs - mine)[real].abs().max().item() < TOL


def test_sparse_loss_matches_transformers_loss(mlm_pair):
    hf, ours = mlm_pair
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, ours.cfg.vocab_size, (2, 64), generator=g)
    positions = torch.stack([torch.randperm(64, generator=g)[:16] for _ in range(2)])
    targets = torch.randint(0, ours.cfg.vocab_size, (2, 16), generator=g)
    labels = torch.full_like(ids, -100).scatter(1, positions, targets)
    with torch.no_grad():
        theirs, mine = hf(input_ids=ids, labels=labels).loss, ours(ids, positions, targets)
    assert abs(theirs.item() - mine.item()) < TOL


def test_sequence_classification_matches_transformers(bert_base, tmp_path):
    torch.manual_seed(1)
    hf = transformers.BertForSequenceClassification(hf_config(bert_base, num_labels=3)).eval()
    hf.save_pretrained(tmp_path)
    ours = load_hf(tmp_path, kind="classifier")
    assert isinstance(ours, SequenceClassifier) and ours.num_labels == 3
    batch = inputs(ours.cfg, seed=2)
    with torch.no_grad():
        assert (hf(**batch).logits - ours(**batch)).abs().max().item() < TOL


def test_export_loads_in_transformers_with_the_same_outputs(bert_base, tmp_path):
    torch.manual_seed(2)
    small = bert_base.replace(num_layers=2, vocab_size=5000, max_seq_len=64)
    for model, cls in ((MaskedLM(small), transformers.BertForMaskedLM),
                       (SequenceClassifier(small, 1), transformers.BertForSequenceClassification)):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        folder = export_hf(torch.compile(model), tmp_path / cls.__name__)  # a compiled wrapper exports too
        hf, info = cls.from_pretrained(folder, output_loading_info=True)
        assert not any(info.values()), info
        model.eval()
        batch = inputs(small, seed=3)
        with torch.no_grad():
            theirs = hf.eval()(**batch).logits
            if isinstance(model, MaskedLM):
                theirs, mine = theirs[batch["attention_mask"].bool()], model.logits(**batch)[batch["attention_mask"].bool()]
            else:
                mine = model(**batch)
        assert (theirs - mine).abs().max().item() < TOL
        assert load_hf(folder, kind="mlm" if isinstance(model, MaskedLM) else "classifier").cfg == small.replace(
            dropout=0.0)


def test_crammed_has_no_transformers_equivalent(tmp_path):
    with pytest.raises(ValueError, match="only arch='bert'.*got arch='crammed'"):
        export_hf(MaskedLM(ModelConfig.preset("tiny-2")), tmp_path)


def test_hf_folder_of_another_model_type_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "roberta"}')
    from model.io import CheckpointError

    with pytest.raises(CheckpointError, match="only model_type 'bert'.*roberta"):
        load_hf(tmp_path)
