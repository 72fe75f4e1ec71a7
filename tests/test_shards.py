"""The shard contract: writer, manifest, reader, resume, and every way a shard set can be broken."""

import json
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipeline.document import EmptyCorpus
from pipeline.tokens import shards
from pipeline.tokens.shards import ShardError, ShardSet
from trainer.batches import Batches

SEQ = 16


def make_set(tmp_path, sizes=(50, 30, 20), vocab=1000, seed=0, mask=False):
    """A shard set of random rows; returns (folder, all rows in read order)."""
    rng = np.random.default_rng(seed)
    dtype = shards.dtype_for_vocab(vocab)
    out = tmp_path / "set"
    out.mkdir(parents=True)
    (out / shards.TOKENIZER).write_text("{}")
    entries, all_rows = [], []
    for i, n in enumerate(sizes):
        rows = rng.integers(0, vocab, size=(n, SEQ)).astype(dtype)
        am = (rows != 0).astype(np.uint8) if mask else None
        entries.append(shards.write_shard(out / shards.SHARD_NAME.format(i), rows, am))
        all_rows.append(rows)
    cols = ("input_ids", "attention_mask") if mask else ("input_ids",)
    shards.write_manifest(out, seq_len=SEQ, vocab_size=vocab, shards=entries, config={"x": 1},
                          order={"name": "none"}, packing={}, counts={}, tokens={}, columns=cols)
    return out, np.concatenate(all_rows)


def test_random_access_and_take(tmp_path):
    out, rows = make_set(tmp_path)
    ds = ShardSet(out)
    assert (len(ds), ds.seq_len, ds.vocab_size, ds.dtype) == (100, SEQ, 1000, np.uint16)
    assert ds.tokenizer_file == out / "tokenizer.json"
    assert len(ShardSet(out / "manifest.json")) == 100
    for i in (0, 49, 50, 79, 80, 99, -1):
        np.testing.assert_array_equal(ds[i], rows[i])
    idx = np.array([99, 0, 55, 55, 49, 50, 12])
    np.testing.assert_array_equal(ds.take(idx), rows[idx])
    np.testing.assert_array_equal(ds.take(np.arange(45, 60)), rows[45:60])  # across a shard boundary
    np.testing.assert_array_equal(ds.take(np.arange(10, 20)), rows[10:20])
    with pytest.raises(IndexError):
        ds[100]
    with pytest.raises(IndexError):
        ds.take([5, 100])
    with pytest.raises(KeyError, match="attention_mask"):
        ds.take([0], column="attention_mask")


def test_shards_load_without_cramkit(tmp_path):
    out, rows = make_set(tmp_path, mask=True)
    first = out / "shard-000000.arrow"
    table = pa.ipc.open_stream(pa.memory_map(str(first))).read_all()
    assert table.schema.field("input_ids").type == pa.list_(pa.uint16(), SEQ)
    np.testing.assert_array_equal(np.array(table["input_ids"].to_pylist()), rows[:50])
    datasets = pytest.importorskip("datasets")
    d = datasets.Dataset.from_file(str(first))
    assert len(d) == 50 and d[3]["input_ids"] == rows[3].tolist()
    assert d[3]["attention_mask"] == (rows[3] != 0).astype(int).tolist()
    np.testing.assert_array_equal(ShardSet(out).take([1, 2], column="attention_mask"), (rows[1:3] != 0))


def test_uint32_when_vocab_exceeds_uint16(tmp_path):
    out, rows = make_set(tmp_path, sizes=(5,), vocab=70000)
    ds = ShardSet(out)
    assert ds.dtype == np.uint32 and rows.max() > 65535
    np.testing.assert_array_equal(ds.take(range(5)), rows)


def test_batches_epoch_order_and_exact_resume(tmp_path):
    out, rows = make_set(tmp_path)
    ds = ShardSet(out)
    plain = Batches(ds, 32)
    got = np.concatenate([next(plain) for _ in range(7)])  # 224 rows: 2 epochs + 24
    np.testing.assert_array_equal(got, np.concatenate([rows, rows, rows[:24]]))

    it = Batches(ds, 32, shuffle=True, seed=3)
    seen = [next(it) for _ in range(5)]
    epoch0 = np.concatenate(seen)[:100]
    assert sorted(map(bytes, epoch0)) == sorted(map(bytes, rows))  # a permutation of all rows
    assert not np.array_equal(epoch0, rows)
    state = it.state_dict()
    after = [next(it) for _ in range(4)]
    resumed = Batches(ShardSet(out), 32, shuffle=True, seed=3)
    resumed.load_state_dict(json.loads(json.dumps(state)))
    for a in after:
        np.testing.assert_array_equal(next(resumed), a)
    again = Batches(ds, 32, shuffle=True, seed=3)
    np.testing.assert_array_equal(np.concatenate([next(again) for _ in range(5)]), np.concatenate(seen))
    other = Batches(ds, 32, shuffle=True, seed=4)
    with pytest.raises(ValueError, match="seed"):
        other.load_state_dict(state)


def test_pickles_small_and_works_in_dataloader_workers(tmp_path):
    torch = pytest.importorskip("torch")
    out, rows = make_set(tmp_path)
    ds = ShardSet(out)
    ds[0]  # maps the shards; pickling must not carry them
    assert len(pickle.dumps(ds)) < 20_000
    loader = torch.utils.data.DataLoader(ds, batch_size=10, num_workers=2, shuffle=False)
    got = torch.cat(list(loader)).numpy()
    np.testing.assert_array_equal(got, rows)


def test_missing_truncated_and_altered_shards_are_named(tmp_path):
    out, _ = make_set(tmp_path)
    shard = out / "shard-000001.arrow"
    data = shard.read_bytes()

    shard.write_bytes(data[:-7])
    with pytest.raises(ShardError, match="shard-000001.arrow.*truncated"):
        ShardSet(out)

    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(flipped))
    ShardSet(out)  # the fast check only compares sizes
    with pytest.raises(ShardError, match="shard-000001.arrow.*sha256"):
        ShardSet(out, verify=True)

    shard.unlink()
    with pytest.raises(ShardError, match="shard-000001.arrow.*missing"):
        ShardSet(out)


def test_unknown_format_version_and_missing_manifest(tmp_path):
    out, _ = make_set(tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["format_version"] = 99
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="format_version 99 was written by a newer cramkit.*upgrade cramkit"):
        ShardSet(out)
    manifest["format_version"] = 1  # an older set of the same layout still reads
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert len(ShardSet(out)) > 0
    (out / "manifest.json").unlink()
    with pytest.raises(ShardError, match="no manifest"):
        ShardSet(out)


def test_no_rows_is_refused(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    (out / "tokenizer.json").write_text("{}")
    with pytest.raises(EmptyCorpus, match="filtered away"):
        shards.write_manifest(out, seq_len=SEQ, vocab_size=10, shards=[], config={}, order={},
                              packing={}, counts={}, tokens={})
    assert not (out / "manifest.json").exists()


def test_manifest_is_deterministic_apart_from_created(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    a, _ = make_set(tmp_path / "a")
    b, _ = make_set(tmp_path / "b")
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
    for i in range(3):
        name = shards.SHARD_NAME.format(i)
        assert (a / name).read_bytes() == (b / name).read_bytes()
    m = json.loads((a / "manifest.json").read_text())
    assert m["created"] == "1970-01-01T00:00:00Z" and m["config_hash"] == shards.config_hash({"x": 1})
    assert [s["file"] for s in m["shards"]] == sorted(s["file"] for s in m["shards"])


def edit_manifest(out, change):
    manifest = json.loads((out / "manifest.json").read_text())
    change(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("where", ["shard", "tokenizer"])
@pytest.mark.parametrize("name", ["../x.arrow", "../../../../etc/passwd", "/abs/x.arrow", "/etc/passwd",
                                  "sub/../../x.arrow", "", None, 7])
def test_manifest_names_outside_the_folder_are_refused(tmp_path, where, name):
    out, _ = make_set(tmp_path)
    (tmp_path / "x.arrow").write_bytes((out / "shard-000000.arrow").read_bytes())  # a target that exists

    def change(m):
        if where == "shard":
            m["shards"][0]["file"] = name
        else:
            m["tokenizer"]["file"] = name

    edit_manifest(out, change)
    with pytest.raises(ShardError, match="not a file name inside the shard folder"):
        ShardSet(out)


@pytest.mark.parametrize("where", ["shard", "tokenizer"])
def test_symlink_leading_out_of_the_folder_is_refused(tmp_path, where):
    out, rows = make_set(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    name = "shard-000000.arrow" if where == "shard" else "tokenizer.json"
    (out / name).rename(outside / name)
    (out / name).symlink_to(outside / name)  # same bytes, same size: only the location is wrong
    with pytest.raises(ShardError, match="leads outside the shard folder"):
        ShardSet(out)
    (out / name).unlink()
    (out / name).symlink_to(Path("sub") / name)  # a symlink that stays inside is fine
    (out / "sub").mkdir()
    (outside / name).rename(out / "sub" / name)
    np.testing.assert_array_equal(ShardSet(out, verify=True).take(range(100)), rows)


def test_swapped_tokenizer_fails_verification(tmp_path):
    out, _ = make_set(tmp_path)
    (out / "tokenizer.json").write_text('{"a": 1}')
    ShardSet(out)  # sizes of the tokenizer are not in the manifest: only verify sees it
    with pytest.raises(ShardError, match="tokenizer.json: tokenizer sha256 differs"):
        ShardSet(out, verify=True)


def test_verify_reports_every_byte_and_names_the_first_bad_shard(tmp_path):
    out, _ = make_set(tmp_path, sizes=(50, 30, 20, 10, 40))
    ds = ShardSet(out)
    seen = []
    ds.verify(progress=seen.append, threads=3)
    assert sum(seen) == ds.nbytes == sum(p.stat().st_size for p in out.iterdir() if p.name != "manifest.json")
    for i in (3, 1):  # two bad shards: the first in manifest order is named, whatever hashes first
        shard = out / shards.SHARD_NAME.format(i)
        data = bytearray(shard.read_bytes())
        data[-20] ^= 1
        shard.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="shard-000001.arrow: shard sha256 differs"):
        ShardSet(out).verify(threads=3)


def test_ids_beyond_the_manifest_vocab_are_a_clear_error(tmp_path):
    out, rows = make_set(tmp_path, vocab=1000)
    top = int(rows[50:80].max())
    edit_manifest(out, lambda m: m.update(vocab_size=top))  # a tampered manifest: ids up to `top` exist
    ds = ShardSet(out)
    with pytest.raises(ShardError, match=rf"shard-000001.arrow: token id {top} >= vocab_size {top}"):
        ds.take(np.arange(50, 60))
    with pytest.raises(ShardError, match="token id"):
        next(Batches(ShardSet(out), 128))
    with pytest.raises(ShardError, match="token id"):
        ShardSet(out, verify=True)
    edit_manifest(out, lambda m: m.update(vocab_size=int(rows.max()) + 1))
    ShardSet(out, verify=True)  # the smallest vocab that holds every id is fine


@pytest.mark.parametrize("change,match", [
    (lambda m: m.update(vocab_size=-5), "vocab_size -5"), (lambda m: m.update(seq_len="16"), "seq_len '16'"),
    (lambda m: m.update(dtype="float64"), "dtype 'float64'"), (lambda m: m["shards"][0].update(rows="50"), "'shards'"),
    (lambda m: m.update(shards={"a": 1}), "'shards'"), (lambda m: m.update(columns=["input_ids", "x"]), "knows"),
    (lambda m: m.update(columns=[["input_ids"]]), "needs input_ids")])
def test_malformed_manifest_fields_are_named(tmp_path, change, match):
    out, _ = make_set(tmp_path)
    edit_manifest(out, change)
    with pytest.raises(ShardError, match=match):
        ShardSet(out)


def test_curriculum_epoch_then_shuffled_epochs_and_resume_with_another_batch_size(tmp_path):
    out, rows = make_set(tmp_path)
    ds = ShardSet(out)
    it = Batches(ds, 25, shuffle=True, seed=5, stored_epochs=1)
    epochs = [np.concatenate([next(it) for _ in range(4)]) for _ in range(3)]
    np.testing.assert_array_equal(epochs[0], rows)  # epoch 1: the stored (curriculum) order
    for e in epochs[1:]:
        assert sorted(map(bytes, e)) == sorted(map(bytes, rows)) and not np.array_equal(e, rows)
    assert not np.array_equal(epochs[1], epochs[2])  # a new permutation each epoch
    # the position is in rows: a resumed iterator with another batch size continues at the same row
    it = Batches(ds, 25, shuffle=True, seed=5, stored_epochs=1)
    for _ in range(5):
        next(it)
    resumed = Batches(ds, 10, shuffle=True, seed=5, stored_epochs=1)
    resumed.load_state_dict(it.state_dict())
    np.testing.assert_array_equal(np.concatenate([next(resumed) for _ in range(5)]), epochs[1][25:75])
    with pytest.raises(ValueError, match="stored_epochs"):
        Batches(ds, 25, shuffle=True, seed=5).load_state_dict(it.state_dict())


def test_batches_of_several_columns(tmp_path):
    out, rows = make_set(tmp_path, mask=True)
    it = Batches(ShardSet(out), 64, shuffle=True, seed=1, columns=("input_ids", "attention_mask"))
    for _ in range(3):
        batch = next(it)
        assert set(batch) == {"input_ids", "attention_mask"} and batch["attention_mask"].dtype == np.uint8
        np.testing.assert_array_equal(batch["attention_mask"], batch["input_ids"] != 0)
