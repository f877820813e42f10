"""Seq2seq data: numbers as words, held-out inputs, TSV pairs, padded batches."""

from __future__ import annotations

import pytest
import torch

from stackform.assemble.data import DataError, IGNORE, PairTask, generated_pairs, number_to_words, tsv_pairs
from stackform.assemble.tokenizer import ByteTokenizer
from stackform.specs.train import BuiltinData


@pytest.mark.parametrize("n,words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (42, "forty-two"), (100, "one hundred"),
    (342, "three hundred forty-two"), (1000, "one thousand"), (1001, "one thousand one"),
    (12_345, "twelve thousand three hundred forty-five"), (1_000_000, "one million"),
    (999_999, "nine hundred ninety-nine thousand nine hundred ninety-nine"),
])
def test_number_to_words(n, words):
    assert number_to_words(n) == words


@pytest.mark.parametrize("name", ["numbers", "copy", "reverse"])
def test_generated_tasks_hold_out_their_validation_inputs(name):
    data = BuiltinData(name=name, n_examples=3000, n_val=200, max_number=99_999, max_length=6)
    train, val = generated_pairs(data, seed=0)
    assert len(train) == 3000 and len(val) == 200
    assert not {s for s, _ in train} & {s for s, _ in val}
    assert len({s for s, _ in val}) == 200
    for src, tgt in train[:50] + val[:50]:
        assert tgt == {"numbers": lambda s: number_to_words(int(s)), "copy": str, "reverse": lambda s: s[::-1]}[name](src)
    assert generated_pairs(data, seed=0) == (train, val)  # deterministic


def test_numbers_cover_every_digit_count():
    train, _ = generated_pairs(BuiltinData(name="numbers", n_examples=600, max_number=999_999), seed=1)
    assert {len(s) for s, _ in train} == {1, 2, 3, 4, 5, 6}


def test_tsv_pairs_and_their_errors(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"src{i}\ttgt{i}\n" for i in range(40)) + "\n")
    train, val = tsv_pairs(str(path), 0.1)
    assert len(train) == 36 and len(val) == 4 and not set(train) & set(val)
    path.write_text("a\tb\nno tab here\n")
    with pytest.raises(DataError, match=r"pairs\.tsv:2: expected one tab between source and target, found 0 tabs"):
        tsv_pairs(str(path), 0.1)
    with pytest.raises(DataError, match="no such file"):
        tsv_pairs(str(tmp_path / "missing.tsv"), 0.1)


def test_pair_batches_are_padded_with_bos_and_eos():
    tok = ByteTokenizer()
    task = PairTask([("ab", "xyz"), ("abcd", "q")], [("c", "d")], tok, 16, seed=0, source="t")
    batch = task.train.batch(torch.tensor([0, 1]))
    assert batch["src_ids"].tolist() == [[97, 98, 256, 256], [97, 98, 99, 100]]
    assert batch["tgt_ids"].tolist() == [[257, 120, 121, 122], [257, 113, 256, 256]]
    assert batch["labels"].tolist() == [[120, 121, 122, 258], [113, 258, IGNORE, IGNORE]]
    with pytest.raises(DataError, match="needs 17 positions .* model.max_len is 16"):
        PairTask([("a", "x" * 16)], [("c", "d")], tok, 16, seed=0, source="t")


@pytest.mark.parametrize("text,error", [
    ("a\tb\n\tc\nd\te\n", r"pairs\.tsv:2: the source \(before the tab\) is empty"),
    ("a\tb\nc\t" + "x" * 16 + "\nd\te\n", r"pairs\.tsv:2: the pair needs 17 positions \(target \+ bos/eos\); "
                                          r"model\.max_len is 16"),
    ("a\tb\n" + "é" * 9 + "\tc\n", r"pairs\.tsv:2: the pair needs 18 positions"),  # UTF-8 bytes, not characters
])
def test_tsv_pair_errors_name_the_line(tmp_path, text, error):
    path = tmp_path / "pairs.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=error):
        tsv_pairs(str(path), 0.1, max_len=16)


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x1c", "\x1e", "\x85", "\x0b", "\x0c"])
def test_tsv_lines_end_only_at_newline(tmp_path, sep):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(f"a{sep}b\tc\r\nd\te{sep}f\n".encode())  # CRLF too
    train, val = tsv_pairs(str(path), 0.5)
    assert sorted(train + val) == [(f"a{sep}b", "c"), ("d", f"e{sep}f")]


def test_tsv_pairs_path_a_directory(tmp_path):
    with pytest.raises(DataError, match="a directory; pairs data is one TSV file"):
        tsv_pairs(str(tmp_path), 0.1)
