"""Training data through a vocabulary tokenizer (``train.tokenizer: bpe`` or ``file``): the task the
training loop draws from, with the tokenizer it was made with (``task.tokenizer``)."""

from __future__ import annotations

from stackform.specs import Spec

from ..data.pairs import generated_pairs, tsv_pairs
from ..data.seq2seq import PairTask
from ..data.text import pydoc_documents, text_files
from ..data.windows import TextTask
from .bpe import cached_bpe_json
from .corpus import cached_text_split, read_documents, text_pieces, tokenize_pieces, training_texts
from .hf import TextTokenizer, TokenizerError
from .resolve import spec_ids, tokenizer_for


def _documents(spec: Spec) -> tuple[list[bytes], str]:
    data = spec.train.data
    if data.type == "builtin":
        documents, separator = pydoc_documents(), spec.train.packing_separator
        if separator is not None:
            documents = [piece for doc in documents for piece in doc.split(separator.encode("utf-8")) if piece]
        return documents, "builtin 'pydoc'"
    return read_documents(text_files(data.path)), data.path


def _bpe(spec: Spec, texts: list[str], known: TextTokenizer | None = None) -> TextTokenizer:
    if known is not None:
        return known
    settings = spec.train.tokenizer
    vocab = settings.vocab_size or spec.model.vocab_size
    return TextTokenizer(cached_bpe_json(texts, vocab, settings.min_frequency), "train.tokenizer (bpe)",
                         template=False, **spec_ids(spec.model))


def load_vocab_task(spec: Spec, seed: int, known: TextTokenizer | None = None) -> "TextTask | PairTask":
    """The task of a spec whose tokenizer is not bytes; ``task.tokenizer`` is that tokenizer."""
    train, model = spec.train, spec.model
    if train.tokenizer.type == "none":
        raise TokenizerError("train.tokenizer: none: this model has no tokenizer, so it cannot read text; give "
                             "train.tokenizer: {type: file, path: tokenizer.json} or {type: bpe}")
    if train.task == "seq2seq":
        data = train.data
        if data.type == "pairs":
            pairs, source = tsv_pairs(data.path, data.val_fraction, model.max_len), data.path
        else:
            pairs, source = generated_pairs(data, train.seed), f"builtin '{data.name}'"
        texts = [text for pair in pairs[0] for text in pair]
        tok = _bpe(spec, texts, known) if train.tokenizer.type == "bpe" else tokenizer_for(spec)
        task = PairTask(*pairs, tok, model.max_len, seed=seed, source=source)
    else:
        fraction, top = train.data.val_fraction, model.vocab_size - 1
        if train.tokenizer.type == "file" and train.data.type != "builtin":  # user files: the token cache
            tok = tokenizer_for(spec)
            split = cached_text_split(text_files(train.data.path), tok, tok.eos_id, fraction, train.data.path, top)
        else:
            documents, source = _documents(spec)
            pieces = text_pieces(documents, fraction)
            tok = _bpe(spec, list(training_texts(pieces)), known) if train.tokenizer.type == "bpe" else tokenizer_for(spec)
            split = tokenize_pieces(pieces, tok, tok.eos_id, source, top)
        task = TextTask(split, train.task, train.seq_len or model.max_len, seed=seed, mask_id=tok.mask_id,
                        mlm_probability=train.mlm_probability, eos_id=tok.eos_id if train.packing else None)
    task.tokenizer = tok
    return task
