"""Checkpoints as safetensors + config.json (+ tokenizer); never pickle. BERT to/from transformers' layout.

A cramkit checkpoint folder holds `model.safetensors` (clean names: no `_orig_mod.` from torch.compile),
`config.json` (the ModelConfig fields plus a "cramkit" entry: kind, num_labels, sha256 of the weights) and,
when given, the tokenizer: `tokenizer.json` (its post-processor set to the GLUE encoding, `[CLS] A [SEP]`
and `[CLS] A [SEP] B [SEP]` with B's segment 1) and `tokenizer_config.json` (special tokens, max length),
which `transformers.AutoTokenizer` reads. A crammed model's folder is also a transformers model folder:
config.json carries `model_type`, `architectures` and an `auto_map` to configuration_crammed.py and
modeling_crammed.py, copied in with bert.py (the architecture), so `AutoModelForMaskedLM.from_pretrained(
folder, trust_remote_code=True)` loads the same weights file. Each file is written to a temporary name and
renamed into place, config.json last, so a folder is never left half-written; the recorded sha256 catches a
tampered or corrupt weight file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from model import card as model_card
from model import tokenizer
from model.config import ModelConfig
from model.heads import MaskedLM, SequenceClassifier

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
KINDS = {"mlm": MaskedLM, "classifier": SequenceClassifier}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# transformers' side of a crammed folder: the code files copied in, and the config.json keys that point to them
CODE_DIR = Path(__file__).resolve().parent
CODE_FILES = ("bert.py", "configuration_crammed.py", "modeling_crammed.py")
MODEL_TYPE = "crammed_bert"
HF_CLASSES = {"mlm": "CrammedForMaskedLM", "classifier": "CrammedForSequenceClassification"}
AUTO_MAP = {"AutoConfig": "configuration_crammed.CrammedConfig", "AutoModel": "modeling_crammed.CrammedModel",
            **{f"AutoModelFor{task}": f"modeling_crammed.{HF_CLASSES[kind]}"
               for task, kind in (("MaskedLM", "mlm"), ("SequenceClassification", "classifier"))}}
HF_KEYS = ("model_type", "architectures", "auto_map", "id2label", "label2id")


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded as asked: the message names the file, field or tensor."""


def unwrap(module: nn.Module) -> MaskedLM | SequenceClassifier:
    """The MaskedLM or SequenceClassifier inside a (possibly torch.compile'd) module."""
    module = getattr(module, "_orig_mod", module)
    if not isinstance(module, (MaskedLM, SequenceClassifier)):
        raise TypeError(f"expected a model.heads.MaskedLM or SequenceClassifier, got {type(module).__name__}")
    return module


def kind_of(module: nn.Module) -> str:
    return "mlm" if isinstance(unwrap(module), MaskedLM) else "classifier"


def clean_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with every `_orig_mod.` (torch.compile wrapper) removed from the names, on CPU."""
    return {k.replace("_orig_mod.", ""): v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def check_tokenizer(path: Path, cfg: ModelConfig) -> None:
    """The tokenizer file reads and fits the model's embedding (as a CheckpointError)."""
    try:
        tokenizer.check_fits(tokenizer.vocab_size(tokenizer.load(path)), cfg.vocab_size, path,
                             "pass the tokenizer it was trained with, or build the model with vocab_size >= "
                             "the tokenizer's size")
    except tokenizer.TokenizerError as err:
        raise CheckpointError(str(err)) from err


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: Path, write) -> None:
    """Call write(tmp_path), then rename tmp_path to path."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def hf_tokenizer(src: Path, out_dir: Path, cfg: ModelConfig) -> None:
    """tokenizer.json with the GLUE post-processor (glueval.encode's layout: `[CLS] A [SEP]`, `[CLS] A [SEP]
    B [SEP]`, segment 1 from B on), no padding or truncation, and tokenizer_config.json (the special tokens
    present, model_max_length = max_seq_len) so that AutoTokenizer encodes exactly as cramkit fine-tunes. A
    tokenizer without [CLS] and [SEP] keeps its own post-processor."""
    from tokenizers import processors

    tok = tokenizer.load(src)
    tok.no_padding()
    tok.no_truncation()
    ids = {name: tok.token_to_id(token) for name, token in tokenizer.HF_NAMES.items()}
    if ids["cls_token"] is not None and ids["sep_token"] is not None:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", ids["cls_token"]), ("[SEP]", ids["sep_token"])])
    settings = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": cfg.max_seq_len,
                "padding_side": "right", "truncation_side": "right", "clean_up_tokenization_spaces": False,
                "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
                **{name: tokenizer.HF_NAMES[name] for name, i in ids.items() if i is not None}}
    write_atomic(out_dir / TOKENIZER, lambda tmp: tok.save(str(tmp)))
    write_atomic(out_dir / TOKENIZER_CONFIG, lambda tmp: tmp.write_text(json.dumps(settings, indent=2) + "\n"))


def hf_entries(cfg: ModelConfig, kind: str, num_labels: int | None) -> dict:
    """The config.json keys by which transformers loads a crammed folder with trust_remote_code=True."""
    entries = {"model_type": MODEL_TYPE, "architectures": [HF_CLASSES[kind]], "auto_map": AUTO_MAP}
    if kind == "classifier":
        labels = {str(i): f"LABEL_{i}" for i in range(num_labels)}
        entries |= {"id2label": labels, "label2id": {v: int(k) for k, v in labels.items()}}
    return entries


def save_pretrained(module: nn.Module, out_dir: str | Path, tokenizer_file: str | Path | None = None,
                    card: dict | None = None) -> Path:
    """Write model.safetensors, config.json and the tokenizer (from tokenizer_file) to out_dir; for a crammed
    model also the transformers code files, and with `card` (facts about the training, see model.card) a
    README.md model card. Returns out_dir."""
    model, out_dir = unwrap(module), Path(out_dir)
    cfg, kind = model.cfg, kind_of(model)
    num_labels = getattr(model, "num_labels", None)
    if tokenizer_file is not None:
        check_tokenizer(Path(tokenizer_file), cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / WEIGHTS
    write_atomic(weights, lambda tmp: save_file(clean_state_dict(model), str(tmp), metadata={"format": "pt"}))
    if tokenizer_file is not None:
        hf_tokenizer(Path(tokenizer_file), out_dir, cfg)
    entries = {}
    if cfg.crammed:
        for name in CODE_FILES:
            write_atomic(out_dir / name, lambda tmp, name=name: shutil.copyfile(CODE_DIR / name, tmp))
        entries = hf_entries(cfg, kind, num_labels)
    if card is not None:
        text = model_card.render(cfg, kind, card)
        write_atomic(out_dir / model_card.README, lambda tmp: tmp.write_text(text))
    meta = {"kind": kind, "num_labels": num_labels, "weights_sha256": sha256(weights)}
    text = json.dumps({**cfg.to_dict(), **entries, "cramkit": meta}, indent=2) + "\n"
    write_atomic(out_dir / CONFIG, lambda tmp: tmp.write_text(text))
    return out_dir


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: a checkpoint folder needs {CONFIG} and {WEIGHTS}")
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return values


def weights_file(folder: Path) -> Path:
    """folder/model.safetensors, or a CheckpointError saying it is missing (and that pickles are refused)."""
    path = folder / WEIGHTS
    if not path.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        hint = (f"; {pickles} are pickle files, which cramkit never loads (unpickling runs arbitrary code): "
                "convert them to safetensors with a tool you trust") if pickles else ""
        raise CheckpointError(f"{path} is missing{hint}")
    return path


def check_sizes(folder: Path, cfg: ModelConfig) -> None:
    """The config's sizes against the tensor shapes in model.safetensors' header (read without the tensors,
    its offsets checked against the file's size), before anything is built: a config.json that claims sizes
    its weights do not have is a CheckpointError, not an allocation without end. The sizes no saved tensor
    shows (crammed positions, a fresh classifier's head_dim) may not ask for more elements than the weights
    hold, or 2**24 (64 MiB in fp32) for a model smaller than that."""
    path = weights_file(folder)
    try:
        with safe_open(str(path), "pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a valid safetensors file ({err}); pickle files are refused") from err
    layers = sorted({int(m[1]) for k in shapes if (m := re.match(r"encoder\.layers\.(\d+)\.", k))})
    d = cfg.hidden_size
    found = {"vocab_size, hidden_size": ((cfg.vocab_size, d), shapes.get("encoder.embeddings.word.weight")),
             "num_layers": (cfg.num_layers, len(layers) if layers == list(range(len(layers))) else layers),
             "intermediate_size": ((cfg.intermediate_size, d), shapes.get("encoder.layers.0.ffn.up.weight"))}
    if not cfg.crammed:
        found["max_seq_len"] = ((cfg.max_seq_len, d), shapes.get("encoder.embeddings.position.weight"))
    if cfg.type_vocab_size:
        found["type_vocab_size"] = ((cfg.type_vocab_size, d), shapes.get("encoder.embeddings.token_type.weight"))
    if "pool.weight" in shapes:
        found["head_dim"] = ((cfg.head_dim, d), shapes["pool.weight"])
    for field, (claimed, saved) in found.items():
        if claimed != saved:
            raise CheckpointError(f"{folder / CONFIG} says {field} = {claimed}, but the weights in {path} have "
                                  f"{saved if saved is not None else 'no such tensor'}; config.json is edited or "
                                  "belongs to other weights")
    held = sum(math.prod(shape) for shape in shapes.values())
    unseen = {"head_dim": d * cfg.head_dim} if "pool.weight" not in shapes else {}
    if cfg.crammed:
        unseen["max_seq_len"] = d * cfg.max_seq_len  # the sinusoid table
    for field, size in unseen.items():
        if size > max(held, 1 << 24):
            raise CheckpointError(f"{folder / CONFIG}: {field} {getattr(cfg, field):,} asks for a {size:,}-element "
                                  f"tensor, more than the {held:,} of all the weights in {path}; config.json is "
                                  "edited or belongs to other weights")


def read_weights(folder: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of folder/model.safetensors; pickled checkpoints are refused, never opened."""
    path = weights_file(folder)
    if expected_sha256 is not None and sha256(path) != expected_sha256:
        raise CheckpointError(f"{path}: sha256 differs from the one recorded in {CONFIG} when it was saved; "
                              "the file was modified or is corrupt")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a valid safetensors file ({err}); pickle files are refused") from err


def build(cfg: ModelConfig, kind: str, num_labels: int | None) -> MaskedLM | SequenceClassifier:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    if kind == "classifier":
        if num_labels is None:
            raise ValueError("kind='classifier' needs num_labels (1 = regression)")
        return SequenceClassifier(cfg, num_labels)
    return MaskedLM(cfg)


def load_into(model: nn.Module, tensors: dict[str, torch.Tensor], with_head: bool, source: Path) -> None:
    """Copy the encoder tensors (and the head's, if with_head) into model, checking names and shapes."""
    wanted = {k: v for k, v in model.state_dict().items() if with_head or k.startswith("encoder.")}
    given = {k: v for k, v in tensors.items() if with_head or k.startswith("encoder.")}
    missing = sorted(set(wanted) - set(given))
    unexpected = sorted(set(given) - set(wanted))
    if missing or unexpected:
        raise CheckpointError(f"{source}: tensors do not match the config: missing {missing[:5]}"
                              f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                              f"{' ...' if len(unexpected) > 5 else ''} (check arch, num_layers, type_vocab_size)")
    for name, tensor in given.items():
        if tensor.shape != wanted[name].shape:
            raise CheckpointError(f"{source}: tensor {name} has shape {tuple(tensor.shape)} but the config "
                                  f"gives {tuple(wanted[name].shape)} (check vocab_size, hidden_size, "
                                  "intermediate_size, max_seq_len, head_dim)")
    model.load_state_dict(given, strict=with_head)


def read_config(folder: str | Path) -> tuple[ModelConfig, dict]:
    """The ModelConfig and the "cramkit" entry of a save_pretrained folder's config.json (the keys that
    transformers reads are set aside; any other unknown key is an error), its sizes checked against the
    weights (`check_sizes`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint folder (expected {WEIGHTS}, {CONFIG} and a "
                              "tokenizer, as written by train.py / model.io.save_pretrained)")
    values = read_json(folder / CONFIG)
    meta = values.pop("cramkit", None)
    if not isinstance(meta, dict) or "weights_sha256" not in meta:
        hint = ("saved by transformers; cramkit loads the folders it writes itself"
                if values.get("model_type") == MODEL_TYPE else
                "not written by model.io.save_pretrained (a transformers BERT folder loads with model.io.load_hf)")
        raise CheckpointError(f"{folder / CONFIG}: no 'cramkit' entry with weights_sha256; {hint}")
    try:
        cfg = ModelConfig.from_dict({k: v for k, v in values.items() if k not in HF_KEYS}, source=str(folder / CONFIG))
    except ValueError as err:
        raise CheckpointError(str(err)) from err
    check_sizes(folder, cfg)
    return cfg, meta


def load_pretrained(folder: str | Path, kind: str = "mlm", num_labels: int | None = None,
                    **config_overrides) -> MaskedLM | SequenceClassifier:
    """A module from a save_pretrained folder, in eval mode. The head is loaded when the checkpoint has the
    same kind (and num_labels); otherwise the encoder weights are taken and the head is fresh, e.g. a
    classifier from an MLM checkpoint. config_overrides change fields such as dropout."""
    folder = Path(folder)
    cfg, meta = read_config(folder)
    if config_overrides:
        try:
            cfg = ModelConfig.from_dict({**cfg.to_dict(), **config_overrides}, source=str(folder / CONFIG))
        except ValueError as err:
            raise CheckpointError(str(err)) from err
    if (folder / TOKENIZER).is_file():
        check_tokenizer(folder / TOKENIZER, cfg)
    tensors = read_weights(folder, meta["weights_sha256"])
    if kind == "classifier" and num_labels is None and meta.get("kind") == "classifier":
        num_labels = meta.get("num_labels")
    model = build(cfg, kind, num_labels)
    same_head = meta.get("kind") == kind and (kind == "mlm" or meta.get("num_labels") == num_labels)
    load_into(model, tensors, same_head, folder / WEIGHTS)
    return model.eval()


# transformers' BERT layout ------------------------------------------------------------------------------

def hf_names(cfg: ModelConfig, kind: str) -> list[tuple[str, list[str]]]:
    """(cramkit tensor, transformers tensors) pairs; QKV is the concatenation of query, key, value."""
    pairs = [("encoder.embeddings.word.weight", ["bert.embeddings.word_embeddings.weight"]),
             ("encoder.embeddings.position.weight", ["bert.embeddings.position_embeddings.weight"]),
             ("encoder.embeddings.token_type.weight", ["bert.embeddings.token_type_embeddings.weight"])]
    pairs += [(f"encoder.embeddings.norm.{p}", [f"bert.embeddings.LayerNorm.{p}"]) for p in ("weight", "bias")]
    for i in range(cfg.num_layers):
        ours, theirs = f"encoder.layers.{i}.", f"bert.encoder.layer.{i}."
        for p in ("weight", "bias"):
            pairs += [(f"{ours}attn.qkv.{p}", [f"{theirs}attention.self.{n}.{p}" for n in ("query", "key", "value")]),
                      (f"{ours}attn.out.{p}", [f"{theirs}attention.output.dense.{p}"]),
                      (f"{ours}attn_norm.{p}", [f"{theirs}attention.output.LayerNorm.{p}"]),
                      (f"{ours}ffn.up.{p}", [f"{theirs}intermediate.dense.{p}"]),
                      (f"{ours}ffn.down.{p}", [f"{theirs}output.dense.{p}"]),
                      (f"{ours}ffn_norm.{p}", [f"{theirs}output.LayerNorm.{p}"])]
    for p in ("weight", "bias"):
        if kind == "mlm":
            pairs += [(f"transform.0.{p}", [f"cls.predictions.transform.dense.{p}"]),
                      (f"transform.2.{p}", [f"cls.predictions.transform.LayerNorm.{p}"])]
        else:
            pairs += [(f"pool.{p}", [f"bert.pooler.dense.{p}"]), (f"out.{p}", [f"classifier.{p}"])]
    if kind == "mlm":
        pairs.append(("decoder_bias", ["cls.predictions.bias"]))
    return pairs


def check_bert(cfg: ModelConfig) -> None:
    if cfg.arch != "bert" or cfg.head_dim != cfg.hidden_size or cfg.pool != "first" or cfg.type_vocab_size < 1:
        raise ValueError("only arch='bert' with head_dim == hidden_size, pool='first' and type_vocab_size >= 1 "
                         f"has a transformers BERT equivalent; got arch={cfg.arch!r}, head_dim={cfg.head_dim}, "
                         f"pool={cfg.pool!r}, type_vocab_size={cfg.type_vocab_size}")


def export_hf(module: nn.Module, out_dir: str | Path, tokenizer_file: str | Path | None = None) -> Path:
    """Write a folder that transformers' BertForMaskedLM (MaskedLM) or BertForSequenceClassification
    (SequenceClassifier) loads with from_pretrained and that gives the same outputs."""
    model, out_dir = unwrap(module), Path(out_dir)
    cfg, kind = model.cfg, kind_of(model)
    check_bert(cfg)
    ours = clean_state_dict(model)
    tensors = {}
    for name, theirs in hf_names(cfg, kind):
        for hf_name, part in zip(theirs, ours[name].chunk(len(theirs), dim=0), strict=True):
            tensors[hf_name] = part.contiguous()
    hf_config = {"architectures": ["BertForMaskedLM" if kind == "mlm" else "BertForSequenceClassification"],
                 "model_type": "bert", "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
                 "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
                 "intermediate_size": cfg.intermediate_size, "hidden_act": "gelu",
                 "hidden_dropout_prob": cfg.dropout, "attention_probs_dropout_prob": cfg.dropout,
                 "max_position_embeddings": cfg.max_seq_len, "type_vocab_size": cfg.type_vocab_size,
                 "initializer_range": cfg.init_std, "layer_norm_eps": cfg.norm_eps,
                 "pad_token_id": cfg.pad_token_id, "position_embedding_type": "absolute",
                 "tie_word_embeddings": True}
    if kind == "classifier":
        labels = {str(i): f"LABEL_{i}" for i in range(model.num_labels)}
        hf_config |= {"id2label": labels, "label2id": {v: int(k) for k, v in labels.items()}}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / WEIGHTS, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    if tokenizer_file is not None:
        check_tokenizer(Path(tokenizer_file), cfg)
        hf_tokenizer(Path(tokenizer_file), out_dir, cfg)
    write_atomic(out_dir / CONFIG, lambda tmp: tmp.write_text(json.dumps(hf_config, indent=2) + "\n"))
    return out_dir


def load_hf(folder: str | Path, kind: str = "mlm", num_labels: int | None = None,
            **config_overrides) -> MaskedLM | SequenceClassifier:
    """A transformers BERT folder (config.json + model.safetensors) as an arch='bert' module, in eval mode.
    The head is loaded when its tensors are there (cls.* for mlm, classifier.* for a classifier)."""
    folder = Path(folder)
    hf = read_json(folder / CONFIG)
    if hf.get("model_type") != "bert" or hf.get("position_embedding_type", "absolute") != "absolute" \
            or hf.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"{folder / CONFIG}: only model_type 'bert' with absolute positions and "
                              f"hidden_act 'gelu' is supported; got model_type={hf.get('model_type')!r}, "
                              f"position_embedding_type={hf.get('position_embedding_type')!r}, "
                              f"hidden_act={hf.get('hidden_act')!r}")
    values = {"arch": "bert", "vocab_size": hf["vocab_size"], "max_seq_len": hf["max_position_embeddings"],
              "hidden_size": hf["hidden_size"], "num_layers": hf["num_hidden_layers"],
              "num_heads": hf["num_attention_heads"], "intermediate_size": hf["intermediate_size"],
              "dropout": hf.get("hidden_dropout_prob", 0.1), "pad_token_id": hf.get("pad_token_id", 0),
              "type_vocab_size": hf.get("type_vocab_size", 2), "norm_eps": hf.get("layer_norm_eps", 1e-12),
              "init_std": hf.get("initializer_range", 0.02), "head_dim": hf["hidden_size"], "pool": "first"}
    try:
        cfg = ModelConfig.from_dict({**values, **config_overrides}, source=str(folder / CONFIG))
    except (ValueError, KeyError) as err:
        raise CheckpointError(str(err)) from err
    if kind == "classifier" and num_labels is None and "id2label" in hf:
        num_labels = len(hf["id2label"])
    model = build(cfg, kind, num_labels)
    raw = read_weights(folder)
    raw = {k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
           for k, v in raw.items()}
    if not any(k.startswith("bert.") for k in raw):  # a bare BertModel
        raw = {f"bert.{k}": v for k, v in raw.items()}
    pairs = hf_names(cfg, kind)
    head = [theirs for ours, theirs in pairs if not ours.startswith("encoder.")]
    with_head = all(n in raw for names in head for n in names) and (
        kind == "mlm" or raw["classifier.weight"].shape[0] == num_labels)
    tensors = {}
    for ours, theirs in pairs:
        if not with_head and not ours.startswith("encoder."):
            continue
        missing = [n for n in theirs if n not in raw]
        if missing:
            raise CheckpointError(f"{folder / WEIGHTS}: tensor(s) {missing} missing (needed for {ours})")
        tensors[ours] = torch.cat([raw[n] for n in theirs], dim=0)
    load_into(model, tensors, with_head, folder / WEIGHTS)
    return model.eval()
