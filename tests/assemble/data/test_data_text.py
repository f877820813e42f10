"""Text corpora: the train/validation split, the memory-mapped token cache, language-model windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stackform.assemble.data import DataError, TextTask, cached_split, load_split, split_documents, text_files
from stackform.assemble.data.tokens import block_size, is_val_block
from stackform.specs import load_spec


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.3])
def test_val_blocks_are_the_fraction_evenly_spread(fraction):
    flags = [is_val_block(i, fraction) for i in range(1000)]
    assert sum(flags) == round(1000 * fraction)
    assert not any(flags[: int(1 / fraction) - 1])  # not bunched at the start
    gaps = np.diff(np.flatnonzero(flags))
    assert gaps.max() - gaps.min() <= 1


def test_split_keeps_every_token_once_and_in_order():
    docs = [bytes([65 + i]) * (300 + 37 * i) for i in range(20)]
    split = split_documents(docs, eos_id=258, val_fraction=0.1, source="t")
    stream = np.concatenate([np.frombuffer(d, np.uint8).astype(np.uint16).tolist() + [258] for d in docs])
    block = block_size(len(stream))
    val_mask = np.array([is_val_block(i // block, 0.1) for i in range(len(stream))])
    assert np.array_equal(split.train, stream[~val_mask]) and np.array_equal(split.val, stream[val_mask])
    assert 0.07 < len(split.val) / len(stream) < 0.13


def test_pydoc_corpus_is_builtin():
    split = load_split(load_spec("gpt-tiny"))
    total = len(split.train) + len(split.val)
    assert 400_000 < total < 600_000 and 0.03 < len(split.val) / total < 0.07
    text = bytes(int(x) for x in split.train[:2000] if x < 256).decode()
    assert "the" in text


def test_text_files_are_tokenized_once_into_a_memmap(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("hello world\n" * 400)
    (folder / "sub" / "b.txt").write_text("héllo wörld\n" * 300)
    (folder / ".hidden").write_text("never read")
    files = text_files(folder)
    assert [f.name for f in files] == ["a.txt", "b.txt"]
    first = cached_split(files, 258, 0.1, str(folder))
    assert isinstance(first.train, np.memmap)
    expected = split_documents([f.read_bytes() for f in files], 258, 0.1, "x")
    assert np.array_equal(first.train, expected.train) and np.array_equal(first.val, expected.val)
    built = list((tmp_path / "cache" / "tokens").iterdir())
    assert len(built) == 1
    second = cached_split(files, 258, 0.1, str(folder))  # reuses the cache
    assert np.array_equal(second.val, first.val) and list((tmp_path / "cache" / "tokens").iterdir()) == built
    (folder / "a.txt").write_text("changed\n" * 500)  # a changed file is tokenized again
    cached_split(text_files(folder), 258, 0.1, str(folder))
    assert len(list((tmp_path / "cache" / "tokens").iterdir())) == 2


def test_bad_text_files_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine text " * 10 + b"\xff\xfe oops")
    with pytest.raises(DataError, match=r"bad\.txt: not UTF-8 text \(byte offset 100"):
        cached_split([bad], 258, 0.1, str(bad))
    with pytest.raises(DataError, match="no such file or directory"):
        text_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no files"):
        text_files(tmp_path / "empty")
    (tmp_path / "hidden" / ".git").mkdir(parents=True)
    (tmp_path / "hidden" / ".notes.txt").write_text("text")
    (tmp_path / "hidden" / ".git" / "HEAD").write_text("ref")
    with pytest.raises(DataError, match=r"holds only hidden files \(names starting with '\.', which are skipped\)"):
        text_files(tmp_path / "hidden")


def test_causal_windows_shift_by_one_and_eval_is_fixed():
    split = split_documents([bytes(range(256)) * 20], 258, 0.2, "t")
    task = TextTask(split, "causal_lm", 16, seed=0)
    batch = task.train_batch(5)
    assert batch["input_ids"].shape == (5, 16) == batch["labels"].shape
    assert torch.equal(batch["input_ids"][:, 1:], batch["labels"][:, :-1])
    first = [b["input_ids"] for b in task.eval_batches(4, 100)]
    again = [b["input_ids"] for b in task.eval_batches(4, 100)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    covered = sum(b.shape[0] for b in first) * 16
    assert covered == (len(split.val) - 1) // 16 * 16  # consecutive windows over the whole split
    assert sum(1 for _ in task.eval_batches(4, 2)) == 2


def test_a_split_smaller_than_a_window_is_an_error():
    split = split_documents([b"x" * 500], 258, 0.05, "tiny corpus")
    with pytest.raises(DataError, match="tiny corpus: the validation split has .* fewer than one window of 65"):
        TextTask(split, "causal_lm", 64, seed=0)


def test_the_short_split_error_counts_and_advises_by_split():
    """One token is "1 token"; a short training split asks for a smaller val_fraction, a short validation split a larger one."""
    from stackform.assemble.data.tokens import TokenSplit

    short_train = TokenSplit(np.zeros(1, np.uint16), np.zeros(100, np.uint16), "c")
    with pytest.raises(DataError, match=r"^c: the training split has 1 token, fewer than one window of 17; "
                                        r"use more text, a smaller val_fraction or a smaller train.seq_len$"):
        TextTask(short_train, "causal_lm", 16, seed=0)
    short_val = TokenSplit(np.zeros(100, np.uint16), np.zeros(5, np.uint16), "c")
    with pytest.raises(DataError, match=r"^c: the validation split has 5 tokens, fewer than one window of 16; "
                                        r"use more text, a larger val_fraction or a smaller train.seq_len$"):
        TextTask(short_val, "mlm", 16, seed=0, mask_id=259)
