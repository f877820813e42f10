"""Record data: JSON lines, Parquet, saved Hugging Face datasets; their errors; paths relative to the spec."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from stackform.assemble.cli import main
from stackform.assemble.data import DataError, load_split, load_task
from stackform.assemble.data.tokens import SplitWriter, TokenSplit, block_size
from stackform.specs import load_spec

DOCS = [f"document {i}: " + "lorem ipsum dolor " * (5 + i % 7) for i in range(60)]
PAIRS = [(f"src {i}", f"tgt {i}") for i in range(40)]


def _spec(data: dict, task: str = "causal_lm") -> dict:
    model = {"kind": "decoder" if task != "seq2seq" else "encoder_decoder", "vocab_size": 259, "max_len": 32,
             "d_model": 16, "n_heads": 2, "n_layers": 1}
    return {"name": "records", "model": model,
            "train": {"task": task, "data": data, "seq_len": 16 if task != "seq2seq" else None}}


def _expected(docs: list[str], files: list) -> TokenSplit:
    """The split of ``docs`` (each + eos) cut in blocks sized from the bytes of ``files`` (as the cache does)."""
    block = block_size(sum(f.stat().st_size + 1 for f in files))
    train, val = [], []
    writer = SplitWriter(block, 0.05, train.append, val.append)
    for doc in docs:
        writer.write(np.frombuffer(doc.encode(), np.uint8).astype(np.uint16))
        writer.write(np.array([258], np.uint16))
    return TokenSplit(np.concatenate(train), np.concatenate(val), "x")


def _files(folder, suffix: str) -> list:
    return sorted(folder.rglob(f"*{suffix}"))


def _write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _same(split, expected) -> None:
    assert np.array_equal(split.train, expected.train) and np.array_equal(split.val, expected.val)


def test_jsonl_field_is_one_document_per_line(tmp_path):
    _write_jsonl(tmp_path / "a.jsonl", [{"text": d, "id": i} for i, d in enumerate(DOCS)])
    split = load_split(load_spec(_spec({"type": "jsonl", "path": str(tmp_path / "a.jsonl")})))
    assert isinstance(split.train, np.memmap)
    _same(split, _expected(DOCS, [tmp_path / "a.jsonl"]))
    _write_jsonl(tmp_path / "b.jsonl", [{"body": d} for d in DOCS])  # another field: its own cache entry
    _same(load_split(load_spec(_spec({"type": "jsonl", "path": str(tmp_path / "b.jsonl"), "field": "body"}))),
          _expected(DOCS, [tmp_path / "b.jsonl"]))


def test_a_folder_of_many_files_streams_in_order(tmp_path):
    folder = tmp_path / "shards"
    (folder / "sub").mkdir(parents=True)
    for i in range(0, 60, 20):
        _write_jsonl((folder / "sub" if i else folder) / f"part-{i:03d}.jsonl", [{"text": d} for d in DOCS[i:i + 20]])
    (folder / "README.md").write_text("not a shard")
    split = load_split(load_spec(_spec({"type": "jsonl", "path": str(folder)})))
    order = DOCS[0:20] + DOCS[20:40] + DOCS[40:60]  # part-000, sub/part-020, sub/part-040
    _same(split, _expected(order, _files(folder, ".jsonl")))


@pytest.mark.parametrize("line, problem", [
    ('{"text": "ok"', "not a JSON line"),
    ('{"title": "x"}', "no field 'text' (fields: title)"),
    ('{"text": 3}', "field 'text' is a number, not a string"),
    ('{"text": null}', "field 'text' is null, not a string"),
    ('["text"]', "expected a JSON object"),
    ('{"text": "\\ud800"}', "not encodable as UTF-8"),
])
def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path, line, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n\n' + line + '\n{"text": "after"}\n')
    with pytest.raises(DataError) as info:
        load_split(load_spec(_spec({"type": "jsonl", "path": str(path)})))
    message = str(info.value)
    assert message.startswith(f"{path}:3: ") and problem in message and "\n" not in message


def test_the_cli_says_it_in_one_line_with_exit_2(tmp_path, capsys):
    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\n{"text": 1}\n')
    (tmp_path / "spec.yaml").write_text(json.dumps(_spec({"type": "jsonl", "path": "bad.jsonl"})))
    assert main(["train", str(tmp_path / "spec.yaml"), "--out-dir", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'bad.jsonl'}:2: field 'text' is a number, not a string"


def test_jsonl_pairs_train_seq2seq(tmp_path):
    _write_jsonl(tmp_path / "p.jsonl", [{"en": s, "de": t} for s, t in PAIRS])
    spec = load_spec(_spec({"type": "jsonl", "path": str(tmp_path / "p.jsonl"), "source_field": "en",
                            "target_field": "de", "val_fraction": 0.1}, "seq2seq"))
    task = load_task(spec)
    assert len(task.train_pairs) + len(task.val_pairs) == 40 and len(task.val_pairs) == 4
    assert set(task.train_pairs) | set(task.val_pairs) == set(PAIRS)
    _write_jsonl(tmp_path / "q.jsonl", [{"en": "a", "de": "b"}, {"en": "c"}])
    with pytest.raises(DataError, match=r"q.jsonl:2: no field 'de' \(fields: en\); set train.data.source_field and "
                                        "target_field$"):
        load_task(load_spec(_spec({"type": "jsonl", "path": str(tmp_path / "q.jsonl"), "source_field": "en",
                                   "target_field": "de"}, "seq2seq")))


def test_pair_fields_come_together_and_fit_the_task():
    with pytest.raises(Exception, match="source_field needs target_field"):
        load_spec(_spec({"type": "jsonl", "path": "x.jsonl", "source_field": "en"}, "seq2seq"))
    with pytest.raises(Exception, match="is made of pairs"):
        load_spec(_spec({"type": "jsonl", "path": "x.jsonl", "source_field": "a", "target_field": "b"}))
    with pytest.raises(Exception, match="needs pairs"):
        load_spec(_spec({"type": "jsonl", "path": "x.jsonl"}, "seq2seq"))


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_records_file_given_as_text_is_refused_with_the_right_type(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    path.write_text('{"text": "hello"}\n' * 200)
    with pytest.raises(DataError, match=f"use data: {{type: {suffix[1:]}, path: {path}, field: text}}"):
        load_split(load_spec(_spec({"type": "text", "path": str(path)})))


def test_data_paths_are_relative_to_the_spec_file_and_overrides_to_the_cwd(tmp_path, monkeypatch):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "data").mkdir(parents=True)
    elsewhere.mkdir()
    _write_jsonl(project / "data" / "c.jsonl", [{"text": d} for d in DOCS])
    (elsewhere / "other.txt").write_text("other text " * 500)
    (project / "spec.yaml").write_text(json.dumps(_spec({"type": "jsonl", "path": "data/c.jsonl"})))
    (project / "child.yaml").write_text("extends: spec.yaml\nname: child\n")
    monkeypatch.chdir(elsewhere)
    for name in ("spec.yaml", "child.yaml"):  # extends: relative to the file that names the path
        spec = load_spec(str(project / name))
        assert spec.train.data.path == str(project / "data" / "c.jsonl")
        _same(load_split(spec), _expected(DOCS, [project / "data" / "c.jsonl"]))
    spec = load_spec(str(project / "spec.yaml"), ["train.data={type: text, path: other.txt}"])
    assert spec.train.data.path == "other.txt" and os.path.isfile(spec.train.data.path)
    assert load_spec(_spec({"type": "jsonl", "path": "rel.jsonl"})).train.data.path == "rel.jsonl"  # a dict: as given


# ---- Parquet and saved Hugging Face datasets (optional extra: pyarrow)

def test_parquet_column_is_one_document_per_row(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": DOCS[:30], "n": list(range(30))}), tmp_path / "a.parquet", row_group_size=7)
    pq.write_table(pa.table({"text": DOCS[30:], "n": list(range(30))}), tmp_path / "b.parquet")
    _same(load_split(load_spec(_spec({"type": "parquet", "path": str(tmp_path)}))),
          _expected(DOCS, _files(tmp_path, ".parquet")))
    with pytest.raises(DataError, match=r"a.parquet: no column 'body' \(columns: text, n\)"):
        load_split(load_spec(_spec({"type": "parquet", "path": str(tmp_path), "field": "body"})))
    with pytest.raises(DataError, match="a.parquet: column 'n' holds int64, not strings"):
        load_split(load_spec(_spec({"type": "parquet", "path": str(tmp_path), "field": "n"})))
    pq.write_table(pa.table({"text": ["a", None, "c"]}), tmp_path / "c.parquet")
    with pytest.raises(DataError, match=r"c.parquet: row 2: field 'text' is null"):
        load_split(load_spec(_spec({"type": "parquet", "path": str(tmp_path / "c.parquet")})))
    (tmp_path / "d.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="d.parquet: not a readable Parquet file"):
        load_split(load_spec(_spec({"type": "parquet", "path": str(tmp_path / "d.parquet")})))


def test_without_pyarrow_the_error_names_the_extra(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.split(".")[0] == "pyarrow":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    (tmp_path / "a.parquet").write_bytes(b"x")
    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(DataError, match=r"needs pyarrow: pip install 'stackform\[data\]'"):
        load_split(load_spec(_spec({"type": "parquet", "path": str(tmp_path / "a.parquet")})))


def test_saved_hf_dataset_folder_reads_its_arrow_files(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {"text": DOCS, "src": [f"s{i}" for i in range(60)], "tgt": [f"t{i}" for i in range(60)]}
    whole = datasets.Dataset.from_dict(rows)
    whole.save_to_disk(str(tmp_path / "ds"), num_shards=3)
    _same(load_split(load_spec(_spec({"type": "hf_dataset", "path": str(tmp_path / "ds")}))),
          _expected(DOCS, _files(tmp_path / "ds", ".arrow")))
    datasets.DatasetDict({"train": whole.select(range(30)), "test": whole.select(range(30, 60))}).save_to_disk(
        str(tmp_path / "dd"))
    _same(load_split(load_spec(_spec({"type": "hf_dataset", "path": str(tmp_path / "dd")}))),
          _expected(DOCS[:30], _files(tmp_path / "dd" / "train", ".arrow")))
    _same(load_split(load_spec(_spec({"type": "hf_dataset", "path": str(tmp_path / "dd"), "split": "test"}))),
          _expected(DOCS[30:], _files(tmp_path / "dd" / "test", ".arrow")))
    with pytest.raises(DataError, match=r"no split 'dev' \(splits: train, test\)"):
        load_split(load_spec(_spec({"type": "hf_dataset", "path": str(tmp_path / "dd"), "split": "dev"})))
    task = load_task(load_spec(_spec({"type": "hf_dataset", "path": str(tmp_path / "ds"), "source_field": "src",
                                      "target_field": "tgt"}, "seq2seq")))
    assert len(task.train_pairs) + len(task.val_pairs) == 60 and ("s0", "t0") in task.train_pairs


def test_a_dataset_folder_naming_files_outside_itself_is_refused(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": "../secret.arrow"}]}))
    with pytest.raises(DataError, match="'_data_files' is not a list of file names in the folder"):
        load_split(load_spec(_spec({"type": "hf_dataset", "path": str(folder)})))
