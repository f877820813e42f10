"""lm-evaluation-harness model ``stackform``: ``--model stackform --model_args run=RUN``.

Importing this module registers the model with lm_eval (extra ``lm_eval``). lm_eval 0.4 finds
only the models it ships or that are imported before it runs, so the command is
``stackform-lm-eval`` (lm_eval's own command line, with this model registered)::

    stackform-lm-eval --model stackform --model_args run=runs/gpt-tiny --tasks lambada_openai

From Python: ``import stackform.assemble.eval.harness`` then ``lm_eval.simple_evaluate(model="stackform",
model_args="run=RUN", ...)``, or pass ``StackformLM(run=RUN)`` as the model. ``model_args``:
``run`` (a run folder or a .safetensors checkpoint), ``device`` (auto, cpu, cuda, ...),
``batch_size`` (default 16).
"""

from __future__ import annotations

import sys
from typing import Any

try:
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
except ImportError:  # one line, naming the extra
    raise ImportError("the lm-evaluation-harness model needs lm-eval: pip install 'stackform[lm_eval]'") from None

import torch

from stackform.registry import StackformError

from .errors import EvalError
from .scoring import Scorer


@register_model("stackform")
class StackformLM(LM):
    """A stackform decoder checkpoint behind lm_eval's ``LM`` interface (see ``scoring.Scorer``)."""

    def __init__(self, run: str | None = None, device: str | None = None, batch_size: Any = 16,
                 max_batch_size: Any = None, **unused: Any):
        super().__init__()
        from ..checkpoint import load
        from ..train.device import resolve_device

        if not run:
            raise EvalError("lm-eval --model stackform: give the checkpoint as --model_args run=RUN")
        if device and device.startswith("cuda") and not torch.cuda.is_available():
            print(f"warning: lm-eval --device {device}: CUDA is not available here; using the CPU", file=sys.stderr)
            device = "cpu"  # lm_eval's default device is cuda:0, as its hf model, which falls back too
        torch_device = resolve_device(device or "auto", "--device")
        batch = 16 if batch_size in (None, "auto") or str(batch_size).startswith("auto") else int(batch_size)
        self.scorer = Scorer(load(run, device=torch_device), batch, where=str(run))
        self._device = torch_device
        self.run = str(run)

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return self.scorer.loglikelihood([request.args for request in requests])

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        return self.scorer.loglikelihood_rolling([request.args[0] for request in requests])

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        return self.scorer.generate_until([request.args for request in requests])

    def get_model_info(self) -> dict[str, Any]:
        return {"model_run": self.run, "model_max_len": self.scorer.max_len}


def main() -> None:
    """``stackform-lm-eval``: lm_eval's command line with the ``stackform`` model registered."""
    from lm_eval.__main__ import cli_evaluate

    try:
        cli_evaluate()
    except StackformError as exc:  # a bad run= or device=: one line
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
