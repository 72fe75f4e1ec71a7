"""`python -m model.export FOLDER --out DIR` writes only into a new or empty folder or a cramkit model folder:
a user's folder, or a shard folder with its tokenizer.json, is refused in one line and left as it was."""

import pytest
from tokenizers import Tokenizer, models

from model import export
from model.config import ModelConfig
from model.heads import MaskedLM
from model.io import load_pretrained, save_pretrained


@pytest.fixture
def folder(tmp_path):
    cfg = ModelConfig.preset("tiny-2", vocab_size=500, max_seq_len=32)
    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(498)}}
    Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")).save(str(tmp_path / "tokenizer.json"))
    return save_pretrained(MaskedLM(cfg), tmp_path / "model", tokenizer_file=tmp_path / "tokenizer.json")


def tree(folder) -> dict:
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("files", [{"README.md": "my notes", "config.json": '{"mine": true}'},
                                   {"tokenizer.json": '{"shard": "tokenizer"}', "manifest.json": "{}",
                                    "shard-000000.arrow": "rows"},
                                   {"sub/notes.txt": "mine"}])
def test_export_refuses_a_folder_cramkit_did_not_write(folder, tmp_path, capsys, files):
    dest = tmp_path / "dest"
    for name, text in files.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(text)
    before = tree(tmp_path)
    assert export.main([str(folder), "--out", str(dest)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and str(dest) in err
    assert tree(tmp_path) == before


def test_export_writes_a_new_or_empty_folder_and_over_a_model_folder(folder, tmp_path):
    (tmp_path / "empty").mkdir()
    for dest in (tmp_path / "new", tmp_path / "empty", tmp_path / "new"):
        assert export.main([str(folder), "--out", str(dest)]) == 0
        assert load_pretrained(dest).cfg == load_pretrained(folder).cfg
    assert export.main([str(folder)]) == 0  # in place
