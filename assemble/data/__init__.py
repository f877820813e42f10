"""Training data, never downloaded: the pydoc corpus, generated seq2seq tasks, and user files.

``load_task(spec)`` returns what the training loop draws batches from: a TextTask
(``causal_lm``, ``mlm``) or a PairTask (``seq2seq``). Each has ``train_batch(n)``
(random, from its ``generator``, whose state is part of a checkpoint) and
``eval_batches(n, max_batches)`` (the same batches every time).
"""

from __future__ import annotations

from stackform.specs import Spec

from ..tokenizer import ByteTokenizer
from .errors import DataError
from .mlm import IGNORE, mask_tokens, unigram_log_probs
from .number_words import number_to_words
from .pairs import generated_pairs, held_out, tsv_pairs
from .record_data import RECORD_TYPES, record_pairs, record_split, refuse_records_as_text
from .seq2seq import PairTask
from .text import pydoc_documents, text_files
from .token_cache import cached_split
from .tokens import TokenSplit, split_documents
from .windows import TextTask

DATA_SEED_OFFSET = 1  # the data generator is seeded with train.seed + 1 (dropout uses train.seed)


def load_split(spec: Spec) -> TokenSplit:
    """The train/validation token streams of a text corpus (pydoc in memory, user text memory-mapped)."""
    data, tok = spec.train.data, ByteTokenizer.for_model(spec.model)
    if data.type == "builtin":
        documents, separator = pydoc_documents(), spec.train.packing_separator
        if separator is not None:  # packing: the topics split further at the user's separator
            documents = [piece for doc in documents for piece in doc.split(separator.encode("utf-8")) if piece]
        return split_documents(documents, tok.eos_id, data.val_fraction, "builtin 'pydoc'")
    if data.type in RECORD_TYPES:
        return record_split(data, tok.eos_id)
    files = text_files(data.path)
    refuse_records_as_text(files, data.path)
    return cached_split(files, tok.eos_id, data.val_fraction, data.path)


def load_task(spec: Spec, tokenizer=None) -> "TextTask | PairTask":
    """The batches a spec's ``train:`` section asks for; ``task.tokenizer`` made them. ``tokenizer``:
    use this one instead of making it (a resumed run's own tokenizer.json)."""
    train, model = spec.train, spec.model
    seed = train.seed + DATA_SEED_OFFSET
    if train.tokenizer.type != "bytes":  # BPE or a tokenizer.json: text is split first, then tokenized
        from ..tokenizers.data import load_vocab_task

        return load_vocab_task(spec, seed, tokenizer)
    task = _byte_task(spec, seed)
    task.tokenizer = ByteTokenizer.for_model(model)
    return task


def _byte_task(spec: Spec, seed: int) -> "TextTask | PairTask":
    train, model = spec.train, spec.model
    tok = ByteTokenizer.for_model(model)
    if train.task == "seq2seq":
        data = train.data
        if data.type == "pairs":
            pairs, source = tsv_pairs(data.path, data.val_fraction, model.max_len), data.path
        elif data.type in RECORD_TYPES:
            pairs, source = record_pairs(data, model.max_len), data.path
        else:
            pairs, source = generated_pairs(data, train.seed), f"builtin '{data.name}'"
        return PairTask(*pairs, tok, model.max_len, seed=seed, source=source, packing=train.packing)
    return TextTask(load_split(spec), train.task, train.seq_len or model.max_len, seed=seed,
                    mask_id=tok.mask_id, mlm_probability=train.mlm_probability,
                    eos_id=tok.eos_id if train.packing else None)


__all__ = [
    "IGNORE", "DataError", "PairTask", "TextTask", "TokenSplit", "cached_split", "generated_pairs", "held_out",
    "load_split", "load_task", "mask_tokens", "number_to_words", "pydoc_documents", "split_documents",
    "text_files", "tsv_pairs", "unigram_log_probs",
]
