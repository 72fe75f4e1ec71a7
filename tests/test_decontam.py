"""Decontamination on real GLUE dev examples injected into real prose the ways contamination happens
(verbatim, detokenized and re-cased, hard-wrapped, a window of a longer example, inside HTML-stripped
text): found and dropped with reason decontam/<task>, every match in contamination.jsonl, the report in
stats.json; clean documents kept, also those sharing common phrases; span mode; the official layouts
and other evaluation files; the same bytes on 1 and 2 workers."""

import html
import json
import re
import textwrap

import pytest
import zstandard
from conftest import SHARED, paragraphs

from pipeline.__main__ import main
from pipeline.cleaning import decontam, evalsets
from pipeline.document import Doc

GLUE = SHARED / "glue"


@pytest.fixture(scope="module")
def glue():
    if not (GLUE / "RTE" / "dev.tsv").is_file():
        pytest.skip(f"{GLUE} not found (set CRAMKIT_SHARED_DATA)")
    return GLUE


def dev(task: str) -> evalsets.EvalSplit:
    t = evalsets.TASKS[task]
    return evalsets.read_glue_tsv(t, "dev", str(GLUE / t.title / "dev.tsv"))


def ptb(text: str) -> str:
    """Penn-Treebank-like tokens, as SST-2 and the parses in GLUE write them."""
    text = re.sub(r"n't\b", " n't", text)
    text = re.sub(r"'(s|re|ll|ve|d|m)\b", r" '\1", text)
    text = text.replace("(", "-LRB- ").replace(")", " -RRB-")
    return re.sub(r"([.,;:!?])", r" \1", text)


def detokenize(text: str) -> str:
    """PTB tokens back to prose, capitalised: `it 's` -> `It's`, `do n't` -> `don't`, `-LRB- x -RRB-` -> `(x)`."""
    text = re.sub(r" (n't|'s|'re|'ll|'ve|'d|'m)\b", r"\1", text)
    text = text.replace("-LRB- ", "(").replace(" -RRB-", ")").replace("`` ", '"').replace(" ''", '"')
    text = re.sub(r" ([.,;:!?])", r"\1", text)
    return re.sub(r"(^|[.!?] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def window(text: str, n: int = 16) -> str:
    ws = text.split()
    start = (len(ws) - n) // 2
    return " ".join(ws[start: start + n])


def html_stripped(text: str) -> str:
    """The text inside a web page, tags removed, entities left as a careless extractor leaves them."""
    words = html.escape(text).split(" ")
    words[len(words) // 2] = f"<b>{words[len(words) // 2]}</b>"
    page = f"<div class='post'><p>{' '.join(words)}</p></div>"
    return re.sub(r"<[^>]+>", "", page)


KINDS = {
    "verbatim": lambda t: t,
    "detokenized": lambda t: detokenize(ptb(t).lower()),
    "wrapped": lambda t: textwrap.fill(t, 30),
    "window": window,
    "html": html_stripped,
}


def examples(glue, n_per_task=3, min_words=17):
    """(task, example index, text) of real dev examples long enough for every kind."""
    out = []
    for task in ("rte", "mrpc", "stsb", "wnli"):
        picked = [(task, e.index, e.texts[0]) for e in dev(task).examples if len(e.texts[0].split()) >= min_words]
        out += picked[:: max(1, len(picked) // n_per_task)][:n_per_task]
    return out


def corpus(glue, shared_text):
    """[(key, text, expected (task, example) or None)]: prose paragraphs, some carrying one example."""
    paras = paragraphs(shared_text, 60)
    docs, exs = [], examples(glue)
    for i, (kind, fn) in enumerate(KINDS.items()):
        for j, (task, index, text) in enumerate(exs):
            p = paras[(i * len(exs) + j) % len(paras)]
            cut = len(p) // 2
            cut = p.index(". ", cut) + 2 if ". " in p[cut:] else cut
            docs.append((f"c-{kind}-{j:02d}", p[:cut] + fn(text) + " " + p[cut:], (task, index)))
    docs += [(f"k-{i:03d}", p, None) for i, p in enumerate(paras)]
    return docs


def run(docs, tmp_path, name, *overrides, workers=1):
    """Write docs as JSON Lines, run the pipeline `--until clean`; (kept keys, stats, match records, texts)."""
    src = tmp_path / f"in-{name}"
    src.mkdir()
    names, at = {}, 0
    with open(src / "docs.jsonl", "w") as f:
        for key, text, _ in docs:
            line = json.dumps({"text": text}) + "\n"
            names[f"jsonl:docs.jsonl:{at:012d}"] = key
            f.write(line)
            at += len(line.encode())
    out = tmp_path / f"out-{name}"
    assert main(["--input", str(src), "--output", str(out), "--until", "clean", "--workers", str(workers),
                 "--split-mb", "0.03", "dedup.near=false", *overrides]) == 0  # 5 units
    texts = {names[r["id"]]: r["text"] for f in sorted(out.glob("docs-*"))
             for r in map(json.loads, zstandard.ZstdDecompressor().stream_reader(f.open("rb")).read().decode().splitlines())}
    found = out / "contamination.jsonl"
    records = [json.loads(x) for x in found.read_text().splitlines()] if found.exists() else []
    for r in records:
        r["key"] = names[r["id"]]
    return texts, json.loads((out / "stats.json").read_text()), records, out


@pytest.fixture(scope="module")
def dropped_run(glue, shared_text, tmp_path_factory):
    docs = corpus(glue, shared_text)
    return docs, run(docs, tmp_path_factory.mktemp("drop"), "one", f"decontam.glue_dir={glue}")


def test_every_way_of_contamination_is_found_and_dropped(dropped_run):
    docs, (kept, stats, records, _) = dropped_run
    dirty = {k: want for k, _, want in docs if want}
    assert len(dirty) == 5 * 12
    assert not set(dirty) & set(kept)  # all 60 gone: verbatim, detokenized, wrapped, window, html
    assert {k for k, _, want in docs if not want} <= set(kept)  # every clean paragraph kept
    by_task = {}
    for task, _ in dirty.values():
        by_task[f"decontam/{task}"] = by_task.get(f"decontam/{task}", 0) + 1
    assert {r: d["docs"] for r, d in stats["dropped"].items() if r.startswith("decontam")} == by_task
    assert stats["documents"]["balanced"]
    assert stats["stages"]["decontam"]["docs"] == stats["stages"]["filter"]["docs"] - 60


def test_every_match_is_recorded_with_its_example(dropped_run):
    docs, (_, stats, records, _) = dropped_run
    dirty = {k: want for k, _, want in docs if want}
    first = {}
    for r in records:
        first.setdefault(r["key"], r)
        assert r["split"] == "dev" and r["end"] > r["start"] and r["text"]
    assert set(first) == set(dirty)
    for key, r in first.items():  # the first match of each document is the example put there
        assert (r["task"], r["example"]) == dirty[key]
    text = {k: t for k, t, _ in docs}["c-wrapped-00"]
    assert "\n" in first["c-wrapped-00"]["text"] and first["c-wrapped-00"]["text"].replace("\n", " ") in \
        text.lower().replace("\n", " ")
    report = stats["contamination"]
    assert report["documents"] == 60 and report["records"] == len(records) and report["file"] == "contamination.jsonl"
    rte = report["sets"]["rte"]["dev"]
    assert rte["examples"] == 277 and 0 < rte["checkable"] <= 277
    assert rte["found"] == len({r["example"] for r in records if r["task"] == "rte"}) >= 3
    assert rte["documents"] == sum(1 for t, _ in dirty.values() if t == "rte")


def test_two_workers_give_the_same_bytes(glue, shared_text, dropped_run, tmp_path):
    docs, (_, stats, _, out) = dropped_run
    _, stats2, _, out2 = run(docs, tmp_path, "two", f"decontam.glue_dir={glue}", workers=2)
    for name in ["contamination.jsonl", *sorted(p.name for p in out.glob("docs-*"))]:
        assert (out / name).read_bytes() == (out2 / name).read_bytes()
    assert len(list(out.glob("docs-*"))) >= 2  # of 5 units (the first ones hold only contaminated documents)
    for s in (stats, stats2):
        s.pop("wall_seconds"), s.pop("inputs")
        for stage in s["stages"].values():
            stage.pop("seconds", None)
    assert stats == stats2


def matcher(glue, **cfg) -> decontam.Matcher:
    cfg = decontam.DecontamConfig(glue_dir=str(glue), **cfg)
    return decontam.Matcher(decontam.load(cfg, "cramming"))


def test_clean_prose_and_common_phrases_are_kept(glue, shared_text):
    """Prose that shares only short or common phrases with GLUE (a few words of an example, the phrases
    many examples share) is not touched."""
    m = matcher(glue, splits=("dev", "train"))
    paras = paragraphs(shared_text, 400)
    mrpc = [e.texts[0] for e in dev("mrpc").examples]
    # five words each from inside two examples, in prose: shorter than an n-gram and than any whole text
    mixed = [f"{p} {' '.join(t.split()[1:6])} {' '.join(u.split()[1:6])} {q}"
             for p, t, u, q in zip(paras, mrpc, mrpc[1:], paras[1:], strict=False)]
    docs = [Doc(i, str(i), t.lower()) for i, t in enumerate(paras + mixed)]
    kept, dropped, records = m.apply(docs)
    assert not dropped and not records and kept == docs


def test_boilerplate_ngrams_and_short_examples_follow_the_policy(glue):
    stsb = dev("stsb")
    frame = "according to the annual report released by the agency on monday morning last week"  # 14 words
    sets = [evalsets.EvalSplit("t", "dev", "x", [evalsets.Example(i, (f"{frame} item {w} was seen",))
                                                  for i, w in enumerate("abcdefghijkl")])]
    def first(n):  # the first sentence of an STS-B example of n words
        e = next(e for e in stsb.examples if len(decontam.words(e.texts[0])) == n)
        return evalsets.Example(e.index, e.texts[:1])

    short, four, tiny = first(7), first(4), evalsets.Example(9999, ("Yes.",))
    sets.append(evalsets.EvalSplit("stsb", "dev", "y", [short, four, tiny]))
    cfg = decontam.DecontamConfig(paths=("x",), max_examples=10)
    ix = decontam.build(sets, cfg, "cramming")
    assert [s["checkable"] for s in ix.meta["sets"]] == [12, 2]  # the 1-word one cannot be checked
    m = decontam.Matcher(ix)
    seven, quad = " ".join(decontam.words(short.texts[0])), " ".join(decontam.words(four.texts[0]))
    docs = [Doc(0, "a", f"it was {frame} item x was seen."),  # the 12 examples' common 13-grams: boilerplate
            Doc(1, "b", f"so {frame} item c was seen by all"),  # but this one is example 2's own
            Doc(2, "c", f"she said: {short.texts[0].upper()} and left"),  # a whole short text, set off before
            Doc(3, "d", f"he said {' '.join(seven.split()[:6])} twice."),  # part of one
            Doc(4, "e", f"he said {seven} twice."),  # inside a sentence: words on both sides
            Doc(5, "f", f"then, {quad} and more."),  # under 6 words, set off on one side only
            Doc(6, "g", f"then: {quad}. more.")]  # ... and on both sides
    kept, dropped, records = m.apply(docs)
    assert [d.name for d, _ in dropped] == ["b", "c", "g"] and [d.name for d in kept] == ["a", "d", "e", "f"]
    assert [(r["task"], r["example"]) for r in records] == [("t", 2), ("stsb", short.index), ("stsb", four.index)]


def test_a_short_sentence_is_found_as_a_sentence_only(glue):
    """A CoLA sentence of two words is found where it stands as a sentence, not inside a longer one; a short
    text of the evaluation sets' most common words only is not checked."""
    cola = next(e for e in dev("cola").examples if e.texts[0] == "Cynthia chewed.")
    filler = [evalsets.Example(i, (f"who is there in room {i} of the old house by the river",)) for i in range(120)]
    common = evalsets.Example(120, ("Who is there?",))
    sets = [evalsets.EvalSplit("cola", "dev", "x", [cola]), evalsets.EvalSplit("t", "dev", "y", [*filler, common])]
    m = decontam.Matcher(decontam.build(sets, decontam.DecontamConfig(paths=("y",)), "cramming"))
    docs = [Doc(0, "a", "the rain stopped. cynthia chewed. then we left."),
            Doc(1, "b", "the rain stopped.\n\n\"cynthia chewed!\"\n\nthen we left."),  # quoted, between blank lines
            Doc(2, "c", "then cynthia chewed the bread."),  # inside a longer sentence
            Doc(3, "d", "we saw that cynthia chewed."),
            Doc(4, "e", "\"cynthia chewed,\" he said."),
            Doc(5, "f", "a knock. who is there? nobody.")]  # common words only
    kept, dropped, records = m.apply(docs)
    assert [d.name for d, _ in dropped] == ["a", "b"] and [d.name for d in kept] == ["c", "d", "e", "f"]
    assert {(r["task"], r["example"], r["text"]) for r in records} == {("cola", cola.index, "cynthia chewed")}


def test_a_window_of_tokenized_text_is_found_by_its_tokens(glue):
    """16 tokens of PTB-tokenized text hold fewer than 13 words; they are found as long as they span 13
    tokens in the document too, and the same words with the punctuation joined back are not."""
    m = matcher(glue)
    text = next(t for e in dev("mrpc").examples for t in e.texts
                if len(t.split()) > 20 and len(decontam.words(window(t))) < 12 and window(t)[0].isalnum())
    win = window(text)
    joined = re.sub(r" ([^\w\s]+)(?= |$)", r"\1", win)  # every lone punctuation token joined to the word before
    assert len(decontam.words(win)) < 12 and len(joined.split()) < 13
    kept, dropped, records = m.apply([Doc(0, "a", f"it rained all day. {win} and then we left.".lower()),
                                      Doc(1, "b", f"it rained all day. {joined} and then we left.".lower())])
    assert [d.name for d, _ in dropped] == ["a"] and [d.name for d in kept] == ["b"]
    assert records[0]["task"] == "mrpc" and records[0]["text"].split()[0] == win.split()[0].lower()


def test_span_mode_cuts_the_match_and_keeps_the_rest(glue, shared_text):
    m = matcher(glue, mode="span")
    example = dev("rte").examples[3].texts[0]
    before, after = "The harvest was late that year.", "Nobody in the village minded it."
    kept, dropped, records = m.apply([Doc(0, "a", f"{before}\n{textwrap.fill(example, 25)}\n{after}".lower()),
                                      Doc(1, "b", detokenize(ptb(example)).lower())])
    assert [d.name for d, _ in dropped] == ["b"]  # nothing left but punctuation: dropped
    assert len(kept) == 1 and kept[0].text.startswith(before.lower()) and kept[0].text.rstrip().endswith(after.lower())
    assert decontam.words(kept[0].text) == decontam.words(f"{before} {after}")
    assert {r["id"] for r in records} == {"a", "b"}


def test_every_official_layout_and_other_evaluation_files_are_read(tmp_path):
    g = tmp_path / "glue"
    files = {
        "CoLA/dev.tsv": "gj04\t1\t\tThe cat sat on the mat quietly today.\n",
        "CoLA/test.tsv": "index\tsentence\n0\tA test sentence of CoLA here.\n",
        "SST-2/dev.tsv": "sentence\tlabel\nit 's a charming journey .\t1\n",
        "MNLI/dev_matched.tsv": "index\tpromptID\tsentence1\tsentence2\tgold_label\n0\t1\tP one.\tH one.\tneutral\n",
        "MNLI/dev_mismatched.tsv": "index\tsentence1\tsentence2\tgold_label\n0\tP two.\tH two.\tneutral\nbroken\n",
        "MNLI/test_matched.tsv": "index\tsentence1\tsentence2\n0\tP three.\tH three.\n",
        "QQP/test.tsv": "id\tquestion1\tquestion2\n0\tWhy?\tHow?\n",
        "MRPC/dev.tsv": "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n1\t1\t2\tA a.\tB b.\r\n",
        "diagnostic/diagnostic.tsv": "index\tsentence1\tsentence2\n0\tAx one.\tAx two.\n",
    }
    for name, text in files.items():
        (g / name).parent.mkdir(parents=True, exist_ok=True)
        (g / name).write_text(text)
    sets = {(s.task, s.split): s for s in evalsets.glue_folder(str(g), ("dev", "test"))}
    assert set(sets) == {("cola", "dev"), ("cola", "test"), ("sst2", "dev"), ("mnli", "dev_m"), ("mnli", "dev_mm"),
                         ("mnli", "test_m"), ("qqp", "test"), ("mrpc", "dev"), ("ax", "test")}
    assert sets["cola", "dev"].examples[0].texts == ("The cat sat on the mat quietly today.",)
    assert sets["cola", "test"].examples[0].texts == ("A test sentence of CoLA here.",)
    assert sets["mnli", "dev_mm"].examples[0].texts == ("P two.", "H two.") and sets["mnli", "dev_mm"].malformed == 1
    assert sets["mrpc", "dev"].examples[0].texts == ("A a.", "B b.")
    assert sets["ax", "test"].examples[0].texts == ("Ax one.", "Ax two.")
    assert {s.split for s in evalsets.glue_folder(str(g), ("test",))} == {"test", "test_m"}

    (tmp_path / "lines.txt").write_text("first example\n\nthird example\n")
    (tmp_path / "qa.jsonl").write_text('{"q": "what", "c": ["x", "y"]}\n{"other": 1}\n')
    (tmp_path / "pairs.tsv").write_text("a\tb\tlabel\nleft\tright\t0\n")
    assert evalsets.eval_file(str(tmp_path / "lines.txt")).examples == [evalsets.Example(0, ("first example",)),
                                                                         evalsets.Example(2, ("third example",))]
    qa = evalsets.eval_file(f"{tmp_path / 'qa.jsonl'}#q+c")
    assert (qa.task, qa.examples, qa.malformed) == ("qa", [evalsets.Example(0, ("what", "x", "y"))], 1)
    assert evalsets.eval_file(f"{tmp_path / 'pairs.tsv'}#a+b").examples == [evalsets.Example(0, ("left", "right"))]
    with pytest.raises(evalsets.EvalSetError, match="name the field"):
        evalsets.eval_file(str(tmp_path / "qa.jsonl"))


def test_bad_evaluation_input_is_one_line(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("some text\n")
    assert main(["--input", str(src), "--output", str(tmp_path / "o"), f"decontam.glue_dir={tmp_path / 'none'}"]) == 2
    assert "decontam.glue_dir" in capsys.readouterr().err
    assert main(["--input", str(src), "--output", str(tmp_path / "o"), "decontam.paths=[x.tsv]",
                 "decontam.mode=cut"]) == 2
    assert "decontam.mode='cut'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_hub_layout_reads_like_the_folder(glue, monkeypatch):
    """nyu-mll/glue splits (here built from the same TSV files) give the same examples as the folder."""
    import datasets

    rows = {t: evalsets.read_glue_tsv(evalsets.TASKS[t], "dev", str(glue / evalsets.TASKS[t].title / "dev.tsv"))
            for t in ("rte", "cola")}

    def load_dataset(name, config, split):
        if config not in rows or split != "validation":
            raise FileNotFoundError(f"{name}/{config}:{split} not in this fake Hub")
        cols = [c for c in evalsets.TASKS[config].hf_columns if c]
        exs = rows[config].examples
        return datasets.Dataset.from_dict({"idx": [e.index for e in exs],
                                           **{c: [e.texts[i] for e in exs] for i, c in enumerate(cols)}})

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    with pytest.raises(evalsets.EvalSetError, match="sst2.*decontam.glue_dir"):  # the first task it lacks
        evalsets.glue_hub(("dev",))
    monkeypatch.setattr(evalsets, "TASKS", {t: evalsets.TASKS[t] for t in rows})
    hub = {(s.task, s.split): s.examples for s in evalsets.glue_hub(("dev",))}
    assert hub == {(t, "dev"): s.examples for t, s in rows.items()}


def test_the_report_reaches_the_manifest_report_png_and_glue_py(tmp_path):
    import io

    from PIL import Image

    from glueval import report
    from model import card
    from model.config import ModelConfig
    from pipeline.graph import report as png
    from pipeline.graph.finish import counts_of

    shards, ckpt = tmp_path / "shards", tmp_path / "final"
    shards.mkdir(), ckpt.mkdir()
    found = {"mode": "drop", "ngram": 13, "min_words": 6, "max_examples": 10, "documents": 7, "records": 9,
             "file": "contamination.jsonl",
             "sets": {"rte": {"dev": {"examples": 277, "checkable": 277, "found": 5, "documents": 7, "malformed": 0}}}}
    stats = {"documents": {}, "dropped": {}, "stages": {}, "files": {}, "contamination": found}
    sink = io.BytesIO()
    png.write_report(sink, {}, {"decontam/rte": 7}, 0.25, contamination=found)
    assert Image.open(io.BytesIO(sink.getvalue())).size == (1440, 640)  # a third column: the found examples
    (shards / "manifest.json").write_text(json.dumps({"content_hash": "abc", "counts": counts_of(stats)}))
    (ckpt / "README.md").write_text(card.render(ModelConfig(vocab_size=32768), "mlm", {"data": "abc", "shards": str(shards)}))
    assert card.facts(ckpt)["shards"] == str(shards)
    text = report.contamination(ckpt)
    assert "| rte | dev | 277 | 277 | 5 | 1.81 | 7 |" in text and "7 documents matched" in text
    (shards / "manifest.json").write_text(json.dumps({"content_hash": "abc", "counts": {}}))
    assert "built without decontam" in report.contamination(ckpt)
    (shards / "manifest.json").write_text(json.dumps({"content_hash": "other shards", "counts": counts_of(stats)}))
    assert report.contamination(ckpt) is None


def test_other_evaluation_files_are_checked_under_their_own_names(tmp_path):
    question = "Which river flows through the old city of Prague before it joins the Elbe at Melnik?"
    (tmp_path / "trivia.jsonl").write_text(json.dumps({"q": question, "a": "Vltava"}) + "\n")
    (tmp_path / "lines.txt").write_text("a line that no corpus holds, long enough to be checked\n")
    cfg = decontam.DecontamConfig(paths=(f"{tmp_path / 'trivia.jsonl'}#q", str(tmp_path / "lines.txt")))
    m = decontam.Matcher(decontam.load(cfg, "cramming"))
    doc = Doc(0, "d", "we asked: which river flows through the old city of prague before it joins the elbe at melnik? "
                      "nobody knew.")
    kept, dropped, records = m.apply([doc, Doc(1, "e", "a line that no corpus holds.")])
    assert dropped == [(doc, "decontam/trivia")] and [d.name for d in kept] == ["e"]
    assert (records[0]["task"], records[0]["split"], records[0]["example"]) == ("trivia", "file", 0)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "lines.txt").write_text("x\n")
    twice = decontam.DecontamConfig(paths=(str(tmp_path / "lines.txt"), str(tmp_path / "sub" / "lines.txt")))
    with pytest.raises(decontam.DecontamError, match="lines/file"):
        decontam.load(twice, "cramming")
