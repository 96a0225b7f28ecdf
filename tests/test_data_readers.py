"""The data readers (vepo_viz.data): every form gives the same records; column mapping
and its messages; streaming; the hub cache offline."""

from __future__ import annotations

import base64
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.data_fixtures import suite_rows, write_forms
from vepo_viz.data import DataColumns, iter_records, open_data, open_hub, readers
from vepo_viz.errors import VepoInputError


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    return write_forms(tmp_path_factory.mktemp("forms"), suite_rows())


def _pixels(record):
    return record.load_image().tobytes()


def test_every_form_gives_the_same_records(forms):
    seen = {}
    for form, path in forms.items():
        records = list(iter_records(open_data(path), extra=("subject",)))
        seen[form] = [
            (r.key, r.question, r.answer, r.value("subject"), _pixels(r)) for r in records
        ]
        assert all("<image>" not in r.question for r in records)
    assert seen["datasets"] == seen["parquet"] == seen["jsonl"]
    assert [s[2] for s in seen["jsonl"]] == [row["answer"] for row in suite_rows()]


def test_datasetdict_splits_and_bad_split(tmp_path):
    import datasets

    from tests.data_fixtures import geo3k_dataset

    rows = suite_rows()
    dd = datasets.DatasetDict({"train": geo3k_dataset(rows[:2]), "test": geo3k_dataset(rows[2:])})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert open_data(tmp_path / "dd").n_rows == 2  # train by default
    test = open_data(tmp_path / "dd", split="test")
    assert test.n_rows == 1 and test.identity.endswith("[test]")
    with pytest.raises(VepoInputError, match="no split 'dev'; its splits are: train, test"):
        open_data(tmp_path / "dd", split="dev")


def test_bad_column_lists_the_columns(forms):
    source = open_data(forms["parquet"])
    with pytest.raises(VepoInputError) as info:
        next(iter_records(source, DataColumns(image_column="picture")))
    message = str(info.value)
    assert "no image column 'picture'" in message and "images, problem, answer, subject" in message
    assert "--image-column" in message
    with pytest.raises(VepoInputError, match="no answer column 'solution'"):
        next(iter_records(source, DataColumns(answer_column="solution")))
    with pytest.raises(VepoInputError, match="no column 'level' to group by"):
        next(iter_records(source, extra=("level",)))
    table = pa.table({"pic": [b"x"], "text": ["q"]})
    pq.write_table(table, forms["parquet"].parent / "odd.parquet")
    odd = open_data(forms["parquet"].parent / "odd.parquet")
    with pytest.raises(VepoInputError, match="no image column .*its columns are: pic, text"):
        next(iter_records(odd))
    assert next(iter_records(odd, DataColumns(image_column="pic"))).question == "q"


def test_image_cells_bytes_paths_and_dicts(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (6, 4), "red").save(buffer, format="PNG")
    png = buffer.getvalue()
    Image.new("RGB", (6, 4), "red").save(tmp_path / "red.png")
    jsonl = tmp_path / "mixed.jsonl"
    lines = [
        {"image": "red.png", "question": "path"},
        {"image": {"path": "red.png"}, "question": "dict path"},
        {"image": {"bytes": base64.b64encode(png).decode()}, "question": "base64"},
    ]
    jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines))
    records = list(iter_records(open_data(jsonl)))
    assert len({r.load_image().tobytes() for r in records}) == 1
    assert records[0].image == (tmp_path / "red.png").resolve() and records[2].image is None
    # Parquet: a struct column as the datasets Image feature writes it, and plain binary
    struct = pa.array(
        [{"bytes": None, "path": str(tmp_path / "red.png")}, {"bytes": png, "path": "x.png"}],
        type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    )
    pq.write_table(pa.table({"image": struct, "question": ["a", "b"]}), tmp_path / "s.parquet")
    pq.write_table(pa.table({"img": [png], "query": ["c"]}), tmp_path / "b.parquet")
    got = list(iter_records(open_data(tmp_path / "s.parquet"))) + list(
        iter_records(open_data(tmp_path / "b.parquet"))
    )
    assert len({r.load_image().tobytes() for r in got}) == 1 and got[2].question == "c"
    assert got[0].digest == got[1].digest == got[2].digest != ""


def test_shards_glob_and_folder(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "blue").save(buffer, format="PNG")
    for shard in range(3):
        table = pa.table(
            {"image": [buffer.getvalue()] * 2, "question": [f"s{shard}a", f"s{shard}b"]}
        )
        pq.write_table(table, tmp_path / f"train-{shard:05d}-of-00003.parquet")
    pq.write_table(
        pa.table({"image": [buffer.getvalue()], "question": ["t"]}),
        tmp_path / "test-00000-of-00001.parquet",
    )
    folder = open_data(tmp_path)
    assert folder.n_rows == 6 and folder.identity.endswith("[train]")
    assert [r.question for r in iter_records(folder, max_rows=3)] == ["s0a", "s0b", "s1a"]
    assert [r.question for r in iter_records(open_data(tmp_path, split="test"))] == ["t"]
    globbed = open_data(str(tmp_path / "train-0000[12]-*.parquet"))
    assert [r.question for r in iter_records(globbed)] == ["s1a", "s1b", "s2a", "s2b"]


def test_streaming_reads_only_what_is_asked(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "blue").save(buffer, format="PNG")
    n = 5000
    table = pa.table({"image": [buffer.getvalue()] * n, "question": [f"q{i}" for i in range(n)]})
    pq.write_table(table, tmp_path / "big.parquet", row_group_size=500)
    read = []
    real = pq.ParquetFile.iter_batches

    def counting(self, *args, **kwargs):
        for batch in real(self, *args, **kwargs):
            read.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting)
    source = open_data(tmp_path / "big.parquet")
    assert source.n_rows == n
    records = list(iter_records(source, max_rows=50))
    assert len(records) == 50 and sum(read) <= 2 * readers.BATCH_ROWS


def test_hub_cache_offline(tmp_path, monkeypatch, forms):
    import huggingface_hub.constants

    snapshot = tmp_path / "datasets--owner--geo" / "snapshots" / "abc123" / "data"
    snapshot.mkdir(parents=True)
    (tmp_path / "datasets--owner--geo" / "refs").mkdir()
    (tmp_path / "datasets--owner--geo" / "refs" / "main").write_text("abc123")
    (snapshot / "test-00000-of-00001.parquet").write_bytes(forms["parquet"].read_bytes())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    source = open_data("owner/geo")
    assert source.identity == "hub:owner/geo" and source.n_rows == 3
    assert [r.answer for r in iter_records(open_hub("owner/geo"))] == [
        row["answer"] for row in suite_rows()
    ]
    with pytest.raises(VepoInputError, match="huggingface-cli download --repo-type dataset"):
        open_data("owner/missing")
    with pytest.raises(VepoInputError, match="not a hub dataset id"):
        open_hub("/etc/passwd")


def test_jsonl_messages_and_suite(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"image": "a.png", "question": "\xff"}\n')
    with pytest.raises(VepoInputError, match="not UTF-8"):
        list(iter_records(open_data(bad)))
    with pytest.raises(VepoInputError, match="dataset not found"):
        open_data(tmp_path / "none.parquet")
    suite = list(iter_records(open_data("suite"), max_rows=7))
    assert len(suite) == 7 and {r.verifier for r in suite} == {"suite"}
    assert all(r.answer and r.options for r in suite)
    assert readers.missing_data(str(tmp_path / "none.jsonl"))
    assert not readers.missing_data("owner/name") and not readers.missing_data("suite")
