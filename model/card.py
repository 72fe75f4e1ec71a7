"""The model card (README.md) of a saved model folder: how to load it, the architecture, what it was trained
on and for how long, and the GLUE tables that glue.py adds after each evaluation of the folder."""

from __future__ import annotations

import re
from pathlib import Path

from model.config import ModelConfig
from model.flops import param_count

README = "README.md"
# (key of the facts train.py passes, row label); the facts are shown in this order, unknown keys refused
TRAINING_ROWS = (("data", "data: content_hash of the shard manifest"), ("shards", "shard folder"),
                 ("budget", "budget"), ("tokens", "tokens seen"), ("steps", "optimizer steps"),
                 ("minutes", "minutes spent"), ("device", "device"), ("loss", "last training loss"),
                 ("heldout_loss", "held-out MLM loss (every target [MASK]ed)"),
                 ("unigram_entropy", "unigram entropy of the shard rows (the context-free loss)"))
GLUE_HEADING = "## GLUE"
GLUE_NONE = "No evaluation yet: `python glue.py FOLDER --glue-dir GLUE_DIR` adds its table here."
SECTION = re.compile(r"<!-- glue: (?P<key>[^>]*?) -->\n.*?<!-- /glue -->\n", re.S)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"`{value}`" if isinstance(value, str) and value and " " not in value else str(value)


def render(cfg: ModelConfig, kind: str, training: dict) -> str:
    """The card's text for a model of `cfg` and `kind` ("mlm" or "classifier") and the training facts
    (keys from TRAINING_ROWS)."""
    unknown = sorted(set(training) - {k for k, _ in TRAINING_ROWS})
    if unknown:
        raise ValueError(f"model card: unknown training fact(s) {unknown}; known: {[k for k, _ in TRAINING_ROWS]}")
    auto = "AutoModelForMaskedLM" if kind == "mlm" else "AutoModelForSequenceClassification"
    usage = ["```python", f"from transformers import AutoTokenizer, {auto}",
             'tokenizer = AutoTokenizer.from_pretrained("PATH")',
             f'model = {auto}.from_pretrained("PATH", trust_remote_code=True)', "```", ""]
    if not cfg.crammed:
        usage = ["This arch='bert' folder loads in cramkit (`model.io.load_pretrained`); "
                 "`model.io.export_hf` writes a transformers BERT folder from it.", ""]
    model_rows = [("architecture", f"{cfg.arch}: {cfg.num_layers} layers x {cfg.hidden_size} hidden, "
                                   f"{cfg.num_heads} heads, FFN {cfg.intermediate_size}"),
                  ("vocabulary", cfg.vocab_size), ("max sequence length", cfg.max_seq_len),
                  ("parameters", param_count(cfg)), ("non-embedding parameters", param_count(cfg, non_embedding=True)),
                  ("full config", "config.json")]
    lines = ["---", "library_name: transformers", "tags: [cramkit, crammed-bert, fill-mask]", "---", "",
             f"# {'Crammed BERT' if cfg.crammed else 'BERT'} pretrained with cramkit", "",
             "Pretrained by cramkit's budget-limited masked-language-model trainer (train.py). Load it in "
             "transformers (>= 5) with the code files in this folder:", "", *usage,
             "## Model", "", "| | |", "|---|---|", *(f"| {k} | {_fmt(v)} |" for k, v in model_rows), "",
             "## Pretraining", "", "| | |", "|---|---|",
             *(f"| {label} | {_fmt(training[k])} |" for k, label in TRAINING_ROWS if k in training), "",
             GLUE_HEADING, "", GLUE_NONE, ""]
    return "\n".join(lines)


def update_glue(folder: str | Path, key: str, markdown: str) -> Path | None:
    """Put a GLUE results table into the folder's model card under `key` (e.g. protocol and backend),
    replacing an earlier table of the same key; returns the card, or None when the folder has no cramkit
    card (nothing is written then)."""
    path = Path(folder) / README
    if not path.is_file():
        return None
    text = path.read_text()
    if GLUE_HEADING not in text.splitlines():
        return None
    section = f"<!-- glue: {key} -->\n### {key}\n\n{markdown.strip()}\n<!-- /glue -->\n"
    same = next((m for m in SECTION.finditer(text) if m["key"] == key), None)
    if same:
        text = text[:same.start()] + section + text[same.end():]
    else:  # the card ends with the GLUE section: a new table goes last, the first one replaces the placeholder
        text = text.replace(f"{GLUE_NONE}\n", "").rstrip("\n") + "\n\n" + section
    tmp = path.with_name(f".{README}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def facts(folder: str | Path) -> dict:
    """The training facts a folder's card records (key -> the text shown, backticks removed); {} without one."""
    path = Path(folder) / README
    if not path.is_file():
        return {}
    keys = {label: key for key, label in TRAINING_ROWS}
    rows = (line.split(" | ", 1) for line in path.read_text().splitlines() if line.startswith("| ") and line.endswith(" |"))
    return {keys[label[2:]]: value[:-2].strip("`") for label, value in (r for r in rows if len(r) == 2)
            if label[2:] in keys}
