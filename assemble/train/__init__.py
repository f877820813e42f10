"""Training: ``train(spec)`` runs the loop and writes a run folder.

The loop (``loop.py``), AdamW groups (``optim.py``), schedules (``schedule.py``), chunked
cross-entropy (``loss.py``), validation metrics (``evaluate.py``), the resumable state
(``state.py``) and the end-of-run report (``report.py``, ``summary.py``).

``stackform.assemble.train`` is this package *and* the public function: the module is
callable (``train(spec, ...)`` forwards to ``run.train``), so ``from stackform.assemble
import train`` and ``import stackform.assemble.train.loop`` both work.
"""

import inspect
import sys
import types

from .device import TrainingError
from .run import RUN_FILES, TrainResult, train as _train

__all__ = ["RUN_FILES", "TrainResult", "TrainingError"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs) -> TrainResult:
        return _train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
__signature__ = inspect.signature(_train)
