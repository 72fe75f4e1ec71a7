"""Crammed models in transformers: a folder written by model.io.save_pretrained (as train.py's final/) loads
with AutoConfig, AutoModel, AutoModelForMaskedLM and AutoModelForSequenceClassification (trust_remote_code)
in a fresh interpreter without cramkit, and gives cramkit's outputs; AutoTokenizer encodes exactly as
glueval.encode. The transformers side runs once per module in a subprocess (see HF_SIDE)."""

import json
import random
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import configs
from glueval import data
from glueval.encode import collate, encode, load_tokenizer
from model import export
from model.config import ModelConfig
from model.flops import param_count
from model.heads import MaskedLM, SequenceClassifier
from model.io import HF_KEYS, load_pretrained, save_pretrained
from pipeline.tokens.tokenize import train_tokenizer

pytest.importorskip("transformers")

TOL = 1e-5
CRAMMED = [n for n in configs.presets("model") if ModelConfig.preset(n).crammed]
MAX_LENGTHS = (9, 16, 33, 128)
WORDS = ("The committee's report, published on 3 March, said naïve estimates were off by 40% -- "
         "Zoë disagreed; others didn't. A quick brown fox jumps over the lazy dog again and again!").split()

# Run by a fresh `python -S` with only site-packages on sys.path (no .pth files, so no editable install of
# cramkit), from a temporary folder: cramkit must not be importable there.
HF_SIDE = r'''
import json, sys
from pathlib import Path

for name in ("model", "pipeline", "glueval", "trainer", "train", "glue"):
    try:
        __import__(name)
    except ModuleNotFoundError:
        continue
    raise SystemExit(f"cramkit's {name!r} is importable ({sys.modules[name].__file__}): not a clean interpreter")

import torch
from safetensors.torch import load_file, save_file
from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification,
                          AutoTokenizer)

jobs, report = json.loads(Path(sys.argv[1]).read_text()), {}
with torch.no_grad():
    for job in jobs:
        folder, out, info = job["folder"], {}, {}
        if job["kind"] == "tokenizer":
            tok = AutoTokenizer.from_pretrained(folder)
            info = {"class": type(tok).__name__, "fast": tok.is_fast, "max_length": tok.model_max_length,
                    "specials": {k: getattr(tok, k) for k in ("pad_token", "unk_token", "cls_token", "sep_token",
                                                               "mask_token")}, "encodings": {}}
            for length in job["max_lengths"]:
                for name, texts in (("pairs", (job["a"], job["b"])), ("singles", (job["a"],))):
                    enc = tok(*texts, truncation=True, max_length=length)  # as DataCollatorWithPadding pads:
                    info["encodings"][f"{name} {length}"] = dict(tok.pad(enc, pad_to_multiple_of=8))
            report[job["name"]] = info
            continue
        batch = load_file(job["batch"])
        ids, mask = batch["input_ids"], batch["attention_mask"]
        config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        info["config"] = [type(config).__name__, config.num_hidden_layers, config.max_position_embeddings]
        models = {"encoder": AutoModel, "mlm": AutoModelForMaskedLM, "classifier": AutoModelForSequenceClassification}
        for name, auto in models.items():
            extra = {"num_labels": 2} if name == "classifier" and job["kind"] == "mlm" else {}
            model, loading = auto.from_pretrained(folder, trust_remote_code=True, output_loading_info=True, **extra)
            model.eval()
            info[name] = {"class": type(model).__name__, "missing": sorted(loading["missing_keys"]),
                          "unexpected": sorted(loading["unexpected_keys"])}
            result = model(input_ids=ids, attention_mask=mask)
            out[name] = result.last_hidden_state if name == "encoder" else result.logits
            alone = [model(input_ids=ids[i:i + 1, :int(n)])[0][0] for i, n in enumerate(mask.sum(1))]
            out[f"{name} alone"] = torch.cat([x.reshape(-1, x.shape[-1]) for x in alone])  # real positions, in order
            if name == "classifier":
                out |= {f"classifier.{k}": v for k, v in model.state_dict().items()}
        save_file({k: v.contiguous() for k, v in out.items()}, job["out"])
        report[job["name"]] = info
Path(sys.argv[2]).write_text(json.dumps(report))
'''


def run_hf_side(jobs: list[dict], tmp: Path) -> dict:
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    (tmp / "hf_side.py").write_text(HF_SIDE)
    env = {"PYTHONPATH": sysconfig.get_paths()["purelib"], "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
           "HF_MODULES_CACHE": str(tmp / "modules"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-S", "hf_side.py", "jobs.json", "report.json"], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp / "report.json").read_text())


def tokenizer_file(tmp: Path) -> Path:
    """The tokenizer `make corpus` writes (cramming normalizer, WordPiece, pinned specials)."""
    rng = random.Random(0)
    path = tmp / "tokenizer-src.json"
    train_tokenizer([" ".join(rng.choices(WORDS, k=30)) for _ in range(200)], 300).save(str(path))
    return path


def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Random values everywhere (LayerNorms and the position scale too), so a misplaced tensor shows."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def padded_batch(cfg: ModelConfig, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 300, (3, 24), generator=g)
    mask = torch.ones_like(ids)
    for row, n in ((1, 13), (2, 5)):
        mask[row, n:] = 0
        ids[row, n:] = cfg.pad_token_id
    return {"input_ids": ids, "attention_mask": mask}


def small(preset: str, **overrides) -> ModelConfig:
    """The preset's widths, heads, head and pooling, with 2 layers and a 300-token vocabulary (fast)."""
    cfg = ModelConfig.preset(preset)
    return cfg.replace(vocab_size=300, num_layers=min(2, cfg.num_layers), **overrides)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Folders for every crammed preset (MLM), classifiers (3 classes; regression with mean pooling), and
    what transformers made of them in a clean interpreter."""
    tmp = tmp_path_factory.mktemp("hf")
    tok = tokenizer_file(tmp)
    torch.manual_seed(0)
    cases = {f"mlm {p}": MaskedLM(small(p)) for p in CRAMMED}
    cases["classifier 3"] = SequenceClassifier(small("tiny-2"), 3)
    cases["classifier 1 mean"] = SequenceClassifier(small("tiny-2", pool="mean"), 1)
    jobs, models = [], {}
    for i, (name, model) in enumerate(cases.items()):
        folder = save_pretrained(perturbed(model), tmp / f"case{i}", tokenizer_file=tok,
                                 card={"tokens": 1000, "steps": 3, "budget": "1m"})
        save_file(padded_batch(model.cfg, i), str(tmp / f"batch{i}.safetensors"))
        models[name] = (model, folder, load_file(tmp / f"batch{i}.safetensors"), tmp / f"out{i}.safetensors")
        jobs.append({"name": name, "kind": name.split()[0], "folder": str(folder), "batch": str(tmp / f"batch{i}.safetensors"),
                     "out": str(tmp / f"out{i}.safetensors")})
    split = _pairs(120)
    jobs.append({"name": "tokenizer", "kind": "tokenizer", "folder": str(models["mlm tiny"][1]), "a": split.text_a,
                 "b": split.text_b, "max_lengths": list(MAX_LENGTHS)})
    report = run_hf_side(jobs, tmp)
    return {name: (model, folder, batch, load_file(out), report[name])
            for name, (model, folder, batch, out) in models.items()} | {"tokenizer": (split, report["tokenizer"])}


def _pairs(n: int) -> data.Split:
    rng = random.Random(1)
    split = data.Split(source="test", text_b=[])
    for _ in range(n):
        la = rng.randint(1, 50)
        lb = la if rng.random() < 0.2 else rng.randint(1, 50)  # ties: longest-first's odd-token rule
        split.add(" ".join(rng.choices(WORDS, k=la)), " ".join(rng.choices(WORDS, k=lb)), rng.randint(0, 1))
    return split


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal to fp32 rounding over a deep stack: |a - b| <= 1e-4 * (1 + |b|). A padded row and the same
    row alone take different attention kernels, so their sums run in another order, and crammed-bert's 16
    layers carry that on (a logit near 5 differs by ~1e-5; one CPU showed 2e-5 at a logit near 0)."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return bool(((a - b).abs() <= 1e-4 * (1 + b.abs())).all())


def _real(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x[mask.bool()]


@pytest.mark.parametrize("preset", CRAMMED)
def test_every_crammed_preset_loads_in_transformers_with_cramkits_mlm_logits(exported, preset):
    model, folder, batch, out, info = exported[f"mlm {preset}"]
    assert info["config"] == ["CrammedConfig", model.cfg.num_layers, model.cfg.max_seq_len]
    assert info["mlm"] == {"class": "CrammedForMaskedLM", "missing": [], "unexpected": []}
    assert info["encoder"] == {"class": "CrammedModel", "missing": [], "unexpected": []}
    with torch.no_grad():
        mine = model.logits(**batch)
        hidden = model.encoder(**batch)
    assert _diff(out["mlm"], mine) < TOL  # every position, padded ones included
    assert _diff(out["encoder"], hidden) < TOL
    # padding changes nothing at the real positions: the padded batch equals each example alone
    assert _close(_real(out["mlm"], batch["attention_mask"]), out["mlm alone"])
    assert _close(_real(mine, batch["attention_mask"]), out["mlm alone"])
    assert load_pretrained(folder).cfg == model.cfg  # the same folder is still a cramkit checkpoint


@pytest.mark.parametrize("case", ["classifier 3", "classifier 1 mean"])
def test_sequence_classification_logits_match_cramkits(exported, case):
    model, folder, batch, out, info = exported[case]
    assert info["classifier"] == {"class": "CrammedForSequenceClassification", "missing": [], "unexpected": []}
    with torch.no_grad():
        mine = model(**batch)
    assert out["classifier"].shape == (3, model.num_labels)
    assert _diff(out["classifier"], mine) < TOL
    assert _close(out["classifier alone"], mine)  # one row per example: padding changed nothing
    assert load_pretrained(folder, kind="classifier").num_labels == model.num_labels


def test_classifier_from_an_mlm_folder_has_its_encoder_and_a_fresh_head(exported):
    model, _, batch, out, info = exported["mlm tiny"]
    assert info["classifier"]["missing"] == ["out.bias", "out.weight", "pool.bias", "pool.weight"]
    head = {k.removeprefix("classifier."): v for k, v in out.items() if k.startswith("classifier.")}
    for name, tensor in model.state_dict().items():
        assert torch.equal(head[name], tensor), name
    assert abs(head["pool.weight"].std().item() - model.cfg.init_std) < 0.1 * model.cfg.init_std
    assert not head["pool.bias"].any()  # initialised as cramkit initialises a head
    clf = SequenceClassifier(model.cfg, 2)
    clf.load_state_dict(head)
    with torch.no_grad():
        assert _diff(out["classifier"], clf.eval()(**batch)) < TOL


def test_exported_encoder_and_mlm_take_segment_ids_like_cramkit(exported):
    """Document-masked attention (`segment_ids`, as `document_mask=true` trains) in the exported classes."""
    from transformers import AutoModel, AutoModelForMaskedLM

    model, folder, batch, *_ = exported["mlm tiny-2"]
    segments = (torch.arange(batch["input_ids"].shape[1]) >= 9).long().expand_as(batch["input_ids"])
    with torch.no_grad():
        mine = model.logits(**batch, segment_ids=segments)
        hf = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True).eval()
        assert _diff(hf(**batch, segment_ids=segments).logits, mine) < TOL
        assert _diff(hf(**batch).logits, mine) > 1e-3  # across documents by default
        encoder = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        assert _diff(encoder(**batch, segment_ids=segments).last_hidden_state,
                     model.encoder(**batch, segment_ids=segments)) < TOL


def test_auto_tokenizer_encodes_like_cramkits_encoder(exported):
    split, info = exported["tokenizer"]
    folder = exported["mlm tiny"][1]
    assert info["class"] in ("TokenizersBackend", "PreTrainedTokenizerFast") and info["fast"]
    assert info["specials"] == {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
                                "sep_token": "[SEP]", "mask_token": "[MASK]"}
    assert info["max_length"] == exported["mlm tiny"][0].cfg.max_seq_len
    tok = load_tokenizer(folder, 300)
    single = data.Split(source="test", text_a=split.text_a, labels=split.labels)
    for length in MAX_LENGTHS:
        for name, texts in (("pairs", split), ("singles", single)):
            enc = encode(tok, texts, length, regression=False)
            mine = collate(enc, range(len(enc)), tok.token_to_id("[PAD]"), pad_multiple=8)
            theirs = info["encodings"][f"{name} {length}"]
            for key in ("input_ids", "token_type_ids", "attention_mask"):
                assert theirs[key] == mine[key].tolist(), (name, length, key)


def test_folder_files_and_config(exported):
    _, folder, *_ = exported["classifier 3"]
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["README.md", "bert.py", "config.json", "configuration_crammed.py", "model.safetensors",
                     "modeling_crammed.py", "tokenizer.json", "tokenizer_config.json"]
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "crammed_bert" and config["architectures"] == ["CrammedForSequenceClassification"]
    assert config["auto_map"]["AutoModelForMaskedLM"] == "modeling_crammed.CrammedForMaskedLM"
    assert config["cramkit"]["kind"] == "classifier" and len(config["id2label"]) == 3
    for name in ("configuration_crammed.py", "modeling_crammed.py", "bert.py"):  # no cramkit import
        assert "from model" not in (folder / name).read_text() and "import model" not in (folder / name).read_text()


def test_card_lists_the_model_and_its_training(exported):
    model, folder, *_ = exported["mlm tiny"]
    card = (folder / "README.md").read_text()
    assert "AutoModelForMaskedLM.from_pretrained" in card and "| tokens seen | 1,000 |" in card
    assert "| optimizer steps | 3 |" in card and f"| vocabulary | {model.cfg.vocab_size} |" in card
    assert f"| parameters | {param_count(model.cfg):,} |" in card


def test_an_old_folder_is_re_exported_for_transformers(exported, tmp_path):
    """A folder from before the export (config.json without the transformers keys, no code files) gains
    them from `python -m model.export`, in place, and then loads with the same logits."""
    from transformers import AutoModelForMaskedLM

    model, folder, batch, *_ = exported["mlm tiny-2"]
    old = tmp_path / "old"
    old.mkdir()
    for name in ("model.safetensors", "tokenizer.json"):
        (old / name).write_bytes((folder / name).read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k not in HF_KEYS}))
    assert load_pretrained(old).cfg == model.cfg  # cramkit reads it as before
    assert export.main([str(old)]) == 0
    hf = AutoModelForMaskedLM.from_pretrained(old, trust_remote_code=True).eval()
    with torch.no_grad():
        assert _diff(hf(**batch).logits, model.logits(**batch)) < TOL
    bert = MaskedLM(ModelConfig.preset("bert-base", vocab_size=300, num_layers=1, max_seq_len=32))
    save_pretrained(bert, tmp_path / "bert")
    assert export.main([str(tmp_path / "bert")]) == 1  # not in place: cramkit would no longer read it
    assert export.main([str(tmp_path / "bert"), "--out", str(tmp_path / "bert-hf")]) == 0
    assert json.loads((tmp_path / "bert-hf" / "config.json").read_text())["model_type"] == "bert"


def test_transformers_config_has_cramkits_fields_and_the_crammed_bert_defaults():
    """configuration_crammed.py cannot import cramkit, so it repeats ModelConfig's fields: they must agree."""
    import dataclasses

    from model.configuration_crammed import CrammedConfig

    ours = ModelConfig.preset("crammed-bert", vocab_size=32768).to_dict()  # its default: the default corpus's
    theirs = CrammedConfig()
    assert {k: getattr(theirs, k) for k in ours} == ours
    assert theirs.num_hidden_layers == ours["num_layers"] and theirs.initializer_range == ours["init_std"]
    assert {f.name for f in dataclasses.fields(CrammedConfig)} >= set(ours)
    with pytest.raises(ValueError, match="arch must be 'crammed'"):
        CrammedConfig(arch="bert")
