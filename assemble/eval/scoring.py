"""What lm-evaluation-harness asks of a language model, for a stackform decoder (no lm_eval import).

``Scorer(model)`` answers the three requests of lm_eval's ``LM`` interface on token ids:
``loglikelihood`` of a continuation given a context (and whether greedy decoding would produce
it), ``loglikelihood_rolling`` of a whole text in windows of ``max_len`` where each token is
predicted once with as much context as fits, and ``generate_until`` (greedy by default, cut at the
first stop string). A document starts after eos, as in training, where each document ends with
eos. Text becomes ids through the model's tokenizer (bytes today).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..generation import generate
from ..models import DecoderModel
from .errors import EvalError


def tokenizer_of(model: Any) -> Any:
    """The tokenizer a model's text goes through: its run's (bytes, BPE or tokenizer.json), or one line why not."""
    from ..tokenizers.hf import TokenizerError
    from ..tokenizers.resolve import tokenizer_of as run_tokenizer

    try:
        return run_tokenizer(model, ids_flag=None)
    except TokenizerError as exc:
        raise EvalError(f"lm-eval: {exc}") from None


class Scorer:
    """Log-likelihoods and greedy continuations of a decoder-only model, in batches of ``batch_size``."""

    def __init__(self, model: Any, batch_size: int = 16, where: str = "lm-eval"):
        if not isinstance(model, DecoderModel):
            raise EvalError(f"{where}: a {type(model).__name__.removesuffix('Model').lower()} model; the harness "
                            "scores decoder-only language models (kind: decoder)")
        self.model, self.batch_size = model.eval(), max(1, int(batch_size))
        self.tok = tokenizer_of(model)
        self.max_len = model.spec.model.max_len
        self.device = next(model.parameters()).device

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text)

    @torch.no_grad()
    def _score(self, rows: Sequence[tuple[list[int], int]]) -> list[tuple[float, bool]]:
        """For each (ids, n): the summed log-probability of the last ``n`` of ``ids`` given the ones before
        (``len(ids) - 1 <= max_len``), and whether each was the argmax."""
        out: list[tuple[float, bool]] = []
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start:start + self.batch_size]
            width = max(len(ids) - 1 for ids, _ in chunk)
            inputs = torch.full((len(chunk), width), self.tok.pad_id, dtype=torch.long)  # [b, t], right-padded
            for i, (ids, _) in enumerate(chunk):
                inputs[i, :len(ids) - 1] = torch.tensor(ids[:-1])
            logp = torch.log_softmax(self.model(inputs.to(self.device)).float(), dim=-1)  # [b, t, V]
            for i, (ids, n) in enumerate(chunk):
                positions = torch.arange(len(ids) - 1 - n, len(ids) - 1, device=self.device)
                targets = torch.tensor(ids[-n:], device=self.device)
                row = logp[i, positions]  # [n, V]
                out.append((float(row.gather(1, targets[:, None]).sum()), bool((row.argmax(-1) == targets).all())))
        return out

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        """(log p(continuation | context), greedy?) per pair; a long context keeps its last tokens."""
        rows = []
        for context, continuation in pairs:
            cont = self.encode(continuation)[-self.max_len:]
            ids = ([self.tok.eos_id] + self.encode(context) + cont)[-(self.max_len + 1):]
            rows.append((ids, len(cont)))
        scored = self._score([r for r in rows if r[1]])
        it = iter(scored)
        return [next(it) if n else (0.0, True) for _, n in rows]

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]:
        """log p(text) per text: targets in chunks of max_len, each chunk with the max_len tokens before it."""
        rows, owner = [], []
        for index, text in enumerate(texts):
            seq = [self.tok.eos_id] + self.encode(text)  # seq[j] is predicted from seq[:j]
            for first in range(1, len(seq), self.max_len):
                last = min(first + self.max_len - 1, len(seq) - 1)
                begin = max(0, last - self.max_len)
                rows.append((seq[begin:last + 1], last - first + 1))
                owner.append(index)
        totals = [0.0] * len(texts)
        for index, (logprob, _) in zip(owner, self._score(rows)):
            totals[index] += logprob
        return totals

    @torch.no_grad()
    def generate_until(self, requests: Sequence[tuple[str, dict]]) -> list[str]:
        """The continuation of each context, stopped at eos, ``max_gen_toks`` or the first ``until`` string."""
        out = []
        for context, kwargs in requests:
            kwargs = dict(kwargs or {})
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            budget = max(1, min(int(kwargs.pop("max_gen_toks", 256)), self.max_len - 1))
            temperature = float(kwargs.pop("temperature", 0.0)) if kwargs.pop("do_sample", False) else 0.0
            ids = ([self.tok.eos_id] + self.encode(context))[-(self.max_len - budget):]
            prompt = torch.tensor([ids], device=self.device)  # [1, t]
            new = generate(self.model, prompt, budget, temperature=temperature)[0, len(ids):]
            text = self.tok.decode(new.tolist())
            for stop in until:
                if stop and stop in text:
                    text = text[:text.index(stop)]
            out.append(text)
        return out
