"""GLUE readers: official TSV layout (real files and written fixtures) and the HF layout give the same inputs."""

import csv
import os
from pathlib import Path

import datasets
import pytest

from glueval import data
from glueval.tasks import TASKS, UnknownTaskError, resolve

SHARED = Path(os.environ.get("CRAMKIT_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
GLUE = SHARED / "glue"

OFFICIAL_ROWS = {"cola": (8551, 1043), "mrpc": (3668, 408), "rte": (2490, 277), "stsb": (5749, 1500),
                 "wnli": (635, 71)}

# HF nyu-mll/glue ClassLabel names per task (the order defines the ids).
HF_NAMES = {"cola": ["unacceptable", "acceptable"], "mrpc": ["not_equivalent", "equivalent"],
            "rte": ["entailment", "not_entailment"], "wnli": ["not_entailment", "entailment"],
            "sst2": ["negative", "positive"], "qqp": ["not_duplicate", "duplicate"],
            "qnli": ["entailment", "not_entailment"], "mnli": ["entailment", "neutral", "contradiction"]}


def need_glue():
    if not GLUE.is_dir():
        pytest.skip(f"real GLUE files not found at {GLUE}")


@pytest.mark.parametrize("name", sorted(OFFICIAL_ROWS))
def test_real_files_give_official_row_counts(name):
    need_glue()
    td = data.load_tsv(TASKS[name], GLUE)
    assert (len(td.train), len(td.dev["dev"])) == OFFICIAL_ROWS[name]
    for split in (td.train, td.dev["dev"]):
        assert split.rows == len(split) and not split.malformed
        assert all(isinstance(a, str) and a for a in split.text_a)
        assert (split.text_b is None) == (name == "cola")


def test_real_file_quirks():
    need_glue()
    mrpc = data.load_tsv(TASKS["mrpc"], GLUE)  # header starts with a BOM
    assert mrpc.train.labels[:2] == [1, 0] and mrpc.train.text_a[0].startswith("Amrozi accused")
    cola = data.load_tsv(TASKS["cola"], GLUE)  # no header: the first line is data
    assert cola.train.text_a[0] == "Our friends won't buy this analysis, let alone the next one we propose."
    assert set(cola.train.labels) == {0, 1}
    stsb = data.load_tsv(TASKS["stsb"], GLUE)
    assert stsb.train.labels[:2] == [5.0, 3.8] and stsb.train.text_b[0] == "An air plane is taking off."
    # quoting off: a sentence that starts with a quote keeps it, and stays one field
    assert any(b.startswith('" ') for b in mrpc.dev["dev"].text_b)
    rte = data.load_tsv(TASKS["rte"], GLUE)
    assert set(rte.train.labels) == {0, 1} and rte.train.labels[0] == 1  # not_entailment = HF id 1


def _write(path: Path, rows: list[list[str]], crlf: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    end = "\r\n" if crlf else "\n"
    path.write_text(end.join("\t".join(r) for r in rows) + end, encoding="utf-8", newline="")
    return path


MNLI_HEAD = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
             "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]
MNLI_DEV_HEAD = MNLI_HEAD[:11] + ["label2", "label3", "label4", "label5", "gold_label"]


def _mnli_row(i, a, b, gold, dev=False):
    labels = [gold] * (5 if dev else 1)
    return [str(i), "1", f"{i}e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", a, b, *labels, gold]


@pytest.fixture
def fixture_dir(tmp_path):
    """SST-2, QNLI, QQP and MNLI in the official layout, each with one bad row of a known kind."""
    g = tmp_path / "glue"
    _write(g / "SST-2/train.tsv", [["sentence", "label"], ["a gorgeous , witty film ", "1"],
                                   ['" dull " and slow ', "0"], ["an extra\tcolumn", "1"], ["fine", "1"]])
    _write(g / "SST-2/dev.tsv", [["sentence", "label"], ["it 's a charming journey . ", "1"],
                                 ["unflinchingly bleak", "0"]], crlf=True)
    _write(g / "QNLI/train.tsv", [["index", "question", "sentence", "label"],
                                  ["0", "When did it open?", "It opened in 1900.", "entailment"],
                                  ["1", "Who?", '"Nobody," he said.', "not_entailment"],
                                  ["2", "Why?", "Because.", "maybe"]])
    _write(g / "QNLI/dev.tsv", [["index", "question", "sentence", "label"], ["0", "What?", "This.", "entailment"]])
    _write(g / "QQP/train.tsv", [["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                                 ["0", "1", "2", "How do I learn?", "How can I learn?", "1"],
                                 ["1", "3", "4", "What is 2+2?", "Why is the sky blue?", "0"],
                                 ["2", "5", "6", "truncated row"]])
    _write(g / "QQP/dev.tsv", [["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                               ["7", "8", "9", "Is it?", "Is it so?", "1"]])
    _write(g / "MNLI/train.tsv", [MNLI_HEAD, _mnli_row(0, "A man eats.", "Someone eats.", "entailment"),
                                  _mnli_row(1, "A dog runs.", "A cat sleeps.", "contradiction"),
                                  _mnli_row(2, "It rains.", "It is cold.", "neutral")])
    _write(g / "MNLI/dev_matched.tsv", [MNLI_DEV_HEAD, _mnli_row(0, "P.", "H.", "neutral", dev=True),
                                        _mnli_row(1, "P2.", "H2.", "-", dev=True)])
    _write(g / "MNLI/dev_mismatched.tsv", [MNLI_DEV_HEAD, _mnli_row(0, "Q.", "K.", "contradiction", dev=True)])
    return g


def test_fixture_layouts_parse_and_count_bad_rows(fixture_dir):
    sst = data.load_tsv(TASKS["sst2"], fixture_dir)
    assert sst.train.labels == [1, 0, 1] and sst.train.text_a[1] == '" dull " and slow '
    assert sst.train.rows == 4 and dict(sst.train.malformed) == {"3 columns, expected 2": 1}
    assert sst.train.malformed_lines == {"3 columns, expected 2": [4]}
    assert sst.dev["dev"].text_a == ["it 's a charming journey . ", "unflinchingly bleak"]  # CRLF stripped
    qnli = data.load_tsv(TASKS["qnli"], fixture_dir)
    assert qnli.train.labels == [0, 1] and qnli.train.text_b[1] == '"Nobody," he said.'
    assert dict(qnli.train.malformed) == {"unknown label": 1}
    qqp = data.load_tsv(TASKS["qqp"], fixture_dir)
    assert qqp.train.labels == [1, 0] and qqp.train.text_a[0] == "How do I learn?"
    assert dict(qqp.train.malformed) == {"4 columns, expected 6": 1}
    mnli = data.load_tsv(TASKS["mnli"], fixture_dir)
    assert mnli.train.labels == [0, 2, 1] and mnli.train.text_b == ["Someone eats.", "A cat sleeps.", "It is cold."]
    assert set(mnli.dev) == {"m", "mm"}
    assert mnli.dev["m"].labels == [1] and dict(mnli.dev["m"].malformed) == {"unknown label": 1}
    assert mnli.dev["mm"].text_a == ["Q."] and mnli.dev["mm"].labels == [2]
    summary = mnli.summary()
    assert summary["m"]["rows"] == 2 and summary["m"]["used"] == 1 and summary["m"]["malformed"] == {"unknown label": 1}


def test_stsb_bad_scores_are_counted(tmp_path):
    head = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"]
    row = ["0", "g", "f", "y", "0", "n", "n", "A.", "B."]
    f = _write(tmp_path / "train.tsv", [head, row + ["4.2"], row + ["high"], row + ["7.5"], row + ["0.000"]])
    split = data.read_tsv(TASKS["stsb"], f)
    assert split.labels == [4.2, 0.0] and split.malformed == {"score not a number in [0, 5]": 2}


def test_bad_input_errors_name_the_file(tmp_path, fixture_dir):
    with pytest.raises(data.GlueDataError, match="--glue-dir"):
        data.load_tsv(TASKS["rte"], tmp_path)  # no RTE folder
    (tmp_path / "RTE").mkdir()
    with pytest.raises(data.GlueDataError, match=r"RTE/train.tsv: file not found"):
        data.load_tsv(TASKS["rte"], tmp_path)
    _write(tmp_path / "RTE/train.tsv", [["index", "premise", "hypothesis", "label"]])
    with pytest.raises(data.GlueDataError, match=r"train.tsv: header lacks column\(s\) \['sentence1', 'sentence2'\]"):
        data.read_tsv(TASKS["rte"], tmp_path / "RTE/train.tsv")
    (tmp_path / "latin.tsv").write_bytes(b"sentence\tlabel\ncaf\xe9\t1\n")
    with pytest.raises(data.GlueDataError, match="not UTF-8"):
        data.read_tsv(TASKS["sst2"], tmp_path / "latin.tsv")
    with pytest.raises(UnknownTaskError, match="'mnli-x'.*choose from"):
        resolve("rte,mnli-x")


def test_task_names_resolve():
    assert [t.name for t in resolve("RTE, sts-b,CoLA,rte")] == ["rte", "stsb", "cola"]
    assert [t.name for t in resolve(None)] == [t.name for t in resolve("all")] == list(TASKS)
    assert TASKS["wnli"].in_average is False and TASKS["stsb"].num_labels == 1


def test_available_tasks_are_the_folders_present(fixture_dir, tmp_path):
    assert [t.name for t in resolve("available", fixture_dir)] == ["sst2", "qqp", "mnli", "qnli"]  # table order
    with pytest.raises(UnknownTaskError, match="needs --glue-dir"):
        resolve("available")
    with pytest.raises(UnknownTaskError, match="no GLUE task folders"):
        resolve("available", tmp_path)


def test_hub_unreachable_fails_fast_naming_glue_dir(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(data, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(data.GlueDataError, match="--glue-dir"):
        data.load_task(TASKS["rte"], None)


def _hf_style(task_name: str, tsv: Path, cols: dict, label_col: str, header: bool = True) -> datasets.Dataset:
    """An HF nyu-mll/glue-style split built straight from an official file, the way its loader did
    (csv with quoting off), with ClassLabel ids from the HF label names."""
    with open(tsv, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = list(reader)
    head, body = (rows[0], rows[1:]) if header else (None, rows)
    idx = (lambda c: head.index(c)) if header else (lambda c: c)
    names = HF_NAMES.get(task_name)
    # the published HF splits hold no broken rows: leave out the ones the fixtures break on purpose
    body = [r for r in body if len(r) == len(rows[0])]
    binary_ids = names is not None and len(names) == 2 and not any(r[idx(label_col)] in names for r in body)
    tsv_to_name = {"0": names[0], "1": names[1]} if binary_ids else {n: n for n in names or ()}
    body = [r for r in body if names is None or r[idx(label_col)] in tsv_to_name]
    out = {hf: [r[idx(c)] for r in body] for hf, c in cols.items()}
    raw = [r[idx(label_col)] for r in body]
    if task_name == "stsb":
        out["label"] = [float(x) for x in raw]
        features = None
    else:
        out["label"] = [names.index(tsv_to_name[x]) for x in raw]
        feats = {hf: datasets.Value("string") for hf in cols}
        feats["label"] = datasets.ClassLabel(names=names)
        features = datasets.Features(feats)
    out["idx"] = list(range(len(body)))
    if features is not None:
        features["idx"] = datasets.Value("int32")
    return datasets.Dataset.from_dict(out, features=features)


HF_COLS = {"cola": ({"sentence": 3}, 1, False), "mrpc": ({"sentence1": "#1 String", "sentence2": "#2 String"},
                                                          "Quality", True),
           "rte": ({"sentence1": "sentence1", "sentence2": "sentence2"}, "label", True),
           "stsb": ({"sentence1": "sentence1", "sentence2": "sentence2"}, "score", True)}


FIXTURE_HF_COLS = {"sst2": ({"sentence": "sentence"}, "label", True),
                   "qnli": ({"question": "question", "sentence": "sentence"}, "label", True),
                   "qqp": ({"question1": "question1", "question2": "question2"}, "is_duplicate", True)}


@pytest.mark.parametrize("name", sorted(FIXTURE_HF_COLS))
def test_hf_layout_gives_identical_inputs_on_fixtures(name, fixture_dir):
    task = TASKS[name]
    cols, label_col, header = FIXTURE_HF_COLS[name]
    ds = datasets.DatasetDict({split: _hf_style(name, fixture_dir / task.title / f"{f}.tsv", cols, label_col, header)
                               for split, f in (("train", "train"), ("validation", "dev"))})
    from_hf, from_tsv = data.from_hf_dict(task, ds), data.load_tsv(task, fixture_dir)
    for a, b in ((from_hf.train, from_tsv.train), (from_hf.dev["dev"], from_tsv.dev["dev"])):
        assert (a.text_a, a.text_b, a.labels) == (b.text_a, b.text_b, b.labels) and len(a) > 0


@pytest.mark.parametrize("name", sorted(HF_COLS))
def test_hf_layout_gives_identical_inputs(name, tmp_path):
    need_glue()
    task = TASKS[name]
    cols, label_col, header = HF_COLS[name]
    ds = datasets.DatasetDict({split: _hf_style(name, GLUE / task.title / f"{f}.tsv", cols, label_col, header)
                               for split, f in (("train", "train"), ("validation", "dev"))})
    ds.save_to_disk(str(tmp_path / name))  # through saved files, as a cached hub download would be
    from_hf = data.from_hf_dict(task, datasets.load_from_disk(str(tmp_path / name)))
    from_tsv = data.load_tsv(task, GLUE)
    for a, b in ((from_hf.train, from_tsv.train), (from_hf.dev["dev"], from_tsv.dev["dev"])):
        assert (a.text_a, a.text_b) == (b.text_a, b.text_b)
        assert a.labels == pytest.approx(b.labels)


def test_hf_layout_fixtures_and_unlabelled_rows(fixture_dir):
    mnli_hf = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"premise": ["A man eats.", "A dog runs.", "It rains."],
                                             "hypothesis": ["Someone eats.", "A cat sleeps.", "It is cold."],
                                             "label": [0, 2, 1], "idx": [0, 1, 2]}),
        "validation_matched": datasets.Dataset.from_dict({"premise": ["P.", "X."], "hypothesis": ["H.", "Y."],
                                                          "label": [1, -1], "idx": [0, 1]}),
        "validation_mismatched": datasets.Dataset.from_dict({"premise": ["Q."], "hypothesis": ["K."],
                                                             "label": [2], "idx": [0]})})
    hf = data.from_hf_dict(TASKS["mnli"], mnli_hf)
    tsv = data.load_tsv(TASKS["mnli"], fixture_dir)
    for k in ("m", "mm"):
        assert (hf.dev[k].text_a, hf.dev[k].text_b, hf.dev[k].labels) == \
               (tsv.dev[k].text_a, tsv.dev[k].text_b, tsv.dev[k].labels)
    assert (hf.train.text_a, hf.train.labels) == (tsv.train.text_a, tsv.train.labels)
    assert hf.dev["m"].malformed == {"unknown label": 1}  # label -1 (unlabelled) is counted, not used
    with pytest.raises(data.GlueDataError, match="validation_mismatched"):
        data.from_hf_dict(TASKS["mnli"], datasets.DatasetDict({"train": mnli_hf["train"],
                                                              "validation_matched": mnli_hf["validation_matched"]}))
    with pytest.raises(data.GlueDataError, match=r"columns \['question'\] missing"):
        data.from_hf(TASKS["qnli"], mnli_hf["train"].rename_column("premise", "sentence"), "x")


def test_subset_is_fixed_and_reported():
    split = data.Split(source="s", text_b=[])
    for i in range(100):
        split.add(f"a{i}", f"b{i}", i % 3)
    s1, s2 = data.subset(split, 10), data.subset(split, 10)
    assert s1.text_a == s2.text_a and len(s1) == 10 and s1.subset_of == 100
    assert [int(a[1:]) for a in s1.text_a] == sorted(int(a[1:]) for a in s1.text_a)
    assert all(b == "b" + a[1:] for a, b in zip(s1.text_a, s1.text_b, strict=True))
    assert data.subset(split, None) is split and data.subset(split, 500) is split
