"""The token cache: keyed by content (an edit that keeps size and mtime is seen), uint32 above
65535, and every malformed entry (generated) refused in one line with the cache left as it was."""

from __future__ import annotations

import json
import os
import random
import shutil

import numpy as np
import pytest
import yaml

from malformed import damaged_bytes, json_documents, one_error_line, snapshot, write_variant
from stackform.assemble.cli import main
from stackform.assemble.data import DataError, TextTask, cached_split, load_split, split_documents, text_files
from stackform.assemble.data.token_cache import cache_root
from stackform.specs import load_spec


def _tokens(split) -> list[int]:
    return np.concatenate([np.asarray(split.train), np.asarray(split.val)]).tolist()


def test_an_edit_that_keeps_size_and_mtime_is_tokenized_again(tmp_path):
    """Same size, same mtime (restored with os.utime), other bytes: fresh tokens, not the cached ones."""
    path = tmp_path / "corpus.txt"
    path.write_text("aaaa bbbb\n" * 300)
    st = path.stat()
    first = cached_split([path], 258, 0.1, "c")
    assert set(_tokens(first)) == {ord("a"), ord(" "), ord("b"), ord("\n"), 258}
    path.write_text("cccc dddd\n" * 300)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    second = cached_split([path], 258, 0.1, "c")
    assert set(_tokens(second)) == {ord("c"), ord(" "), ord("d"), ord("\n"), 258}
    assert _tokens(second) == _tokens(split_documents([path.read_bytes()], 258, 0.1, "x"))
    assert len(list((cache_root() / "tokens").iterdir())) == 2


def test_files_are_hashed_one_by_one(tmp_path):
    """The same bytes cut between two files differently are other documents (eos between): other keys."""
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("x" * 100 + "y" * 100)
    b.write_text("z" * 200)
    one = _tokens(cached_split([a, b], 258, 0.1, "c"))
    a.write_text("x" * 100)
    b.write_text("y" * 100 + "z" * 200)
    two = _tokens(cached_split([a, b], 258, 0.1, "c"))
    assert one != two
    assert two == _tokens(split_documents([a.read_bytes(), b.read_bytes()], 258, 0.1, "x"))


def test_a_vocabulary_above_65535_uses_uint32_tokens(tmp_path):
    """eos above 65535 does not fit uint16: the cache (and the in-memory pydoc split) holds uint32."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(40):  # many documents: an eos in most windows
        (corpus / f"{i:02d}.txt").write_text("hello world\n" * 2)
    spec = {"name": "big-vocab", "model": {"kind": "decoder", "vocab_size": 70_000, "max_len": 16, "d_model": 8,
                                           "n_heads": 2, "n_layers": 1, "pad_id": 69_997, "bos_id": 69_998,
                                           "eos_id": 69_999},
            "train": {"data": {"type": "text", "path": str(corpus)}, "seq_len": 8}}
    split = load_split(load_spec(spec))
    assert split.train.dtype == np.uint32 and 69_999 in _tokens(split)
    task = TextTask(split, "causal_lm", 8, seed=0)
    assert int(task.train_batch(64)["labels"].max()) == 69_999
    small = cached_split(text_files(corpus), 258, 0.1, "c")  # the same text, a byte vocabulary: a uint16 entry
    assert small.train.dtype == np.uint16
    assert split_documents([b"ab"], 70_000, 0.5, "x").train.dtype == np.uint32


def _entry(tmp_path):
    """A corpus, the spec file that trains on it, its cache entry and its tokens."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox\n" * 100)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "t", "model": {"kind": "decoder", "vocab_size": 259, "max_len": 16, "d_model": 8, "n_heads": 2,
                               "n_layers": 1, "pad_id": 256, "bos_id": 257, "eos_id": 258},
        "train": {"data": {"type": "text", "path": str(corpus)}, "seq_len": 8, "steps": 1,
                  "schedule": {"type": "constant", "warmup": 0}}}))
    expected = load_split(load_spec(spec))
    (entry,) = (cache_root() / "tokens").iterdir()
    return corpus, spec, entry, _tokens(expected)


def entry_variants(entry) -> list[tuple[str, str, bytes | None]]:
    """(label, file in the entry, its new bytes or None for a folder)."""
    meta = json.loads((entry / "meta.json").read_text())
    out = [(f"meta.json {label}", "meta.json", data) for label, data in json_documents(meta, random.Random(0))]
    out.append(("meta.json: a folder", "meta.json", None))
    for name in ("train.bin", "val.bin"):
        data = (entry / name).read_bytes()
        out += [(f"{name}: {label}", name, bad) for label, bad in damaged_bytes(data)]
        out += [
            (f"{name}: one byte more", name, data + b"\0"),
            (f"{name}: one token more", name, data + b"\0\0"),
            (f"{name}: as uint32", name, np.frombuffer(data, np.uint16).astype(np.uint32).tobytes()),
            (f"{name}: an id above eos", name, data[:-2] + np.array([40_000], np.uint16).tobytes()),
            (f"{name}: a folder", name, None),
        ]
    return out


def test_every_malformed_cache_entry_is_refused_in_one_line(tmp_path, capsys):
    """Each variant is read correctly (a field nobody reads), or refused in one line naming the entry,
    and the cache is byte for byte as it was; train (the command that reads it) exits 2 with that line."""
    corpus, spec, entry, expected = _entry(tmp_path)
    clean = tmp_path / "clean"
    shutil.copytree(entry, clean)
    refused = 0
    for label, name, data in entry_variants(entry):
        shutil.rmtree(entry)
        shutil.copytree(clean, entry)
        write_variant(entry / name, data)
        before = snapshot(cache_root())
        try:
            got = _tokens(load_split(load_spec(spec)))
        except DataError as exc:
            refused += 1
            assert "\n" not in str(exc) and str(entry) in str(exc) and "delete this folder" in str(exc), label
            assert snapshot(cache_root()) == before, label
            code = main(["train", str(spec), "--out-dir", str(tmp_path / "run"), "--quiet"])
            err = capsys.readouterr().err
            assert code == 2 and one_error_line(err) and "damaged token cache entry" in err, (label, err)
            assert snapshot(cache_root()) == before, label
            continue
        assert got == expected, label
        assert snapshot(cache_root()) == before, label
    assert refused >= 60


def test_an_entry_that_is_a_file_and_an_unwritable_cache_are_one_line(tmp_path, monkeypatch):
    corpus, spec, entry, _ = _entry(tmp_path)
    shutil.rmtree(entry)
    entry.write_text("not a folder")
    with pytest.raises(DataError, match="a damaged token cache entry"):
        load_split(load_spec(spec))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("STACKFORM_CACHE", str(blocker))
    with pytest.raises(DataError, match="cannot write the token cache"):
        cached_split([corpus], 258, 0.1, "c")


def test_special_files_as_data_are_one_line(tmp_path):
    """A device or a pipe as train.data.path is refused (never read: /dev/zero has no end); below a
    directory they, and a symlink loop, are skipped."""
    from stackform.assemble.data import tsv_pairs

    with pytest.raises(DataError, match=r"^/dev/zero: not a regular file or a directory \(train.data.path\)$"):
        text_files("/dev/zero")
    with pytest.raises(DataError, match=r"^/dev/zero: not a regular file \(train.data.path\)$"):
        tsv_pairs("/dev/zero", 0.1)
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("text")
    (folder / "sub" / "up").symlink_to(folder)
    (folder / "zero").symlink_to("/dev/zero")
    os.mkfifo(folder / "pipe")
    assert text_files(folder) == [folder / "a.txt"]
