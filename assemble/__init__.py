"""stackform.assemble: spec -> model, checkpoints, training, generation, the CLI.

Public API: ``assemble``, ``load_spec``, ``save``, ``load``, ``generate``,
``generate_seq2seq``, ``train``.
"""

import os as _os
import sys as _sys


def _run_as_module() -> bool:
    """Whether this process is ``python -m stackform.assemble ...`` (then being imported)."""
    if _sys.argv[:1] != ["-m"]:  # runpy sets argv[0] to "-m" while it imports the packages
        return False
    argv = getattr(_sys, "orig_argv", [])
    for i, arg in enumerate(argv[1:], 1):
        if arg.startswith("-m"):
            target = arg[2:] or (argv[i + 1] if i + 1 < len(argv) else "")
            return target.startswith("stackform.assemble")
    return False


# `python -m stackform.assemble` puts the current folder first on sys.path before this runs: take it
# off before torch is imported, or a triton.py (numpy.py, ...) beside a downloaded model would run.
if _run_as_module():
    try:
        _here = _os.getcwd()
        _sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != _here]
    except OSError:  # the current folder is gone
        pass

from stackform.registry import StackformError  # noqa: E402
from stackform.specs import Spec, SpecError, load_spec

from .build import assemble, build_model
from .checkpoint import load, save
from .errors import CheckpointError, ModelInputError
from .generation import GenerationError, generate, generate_seq2seq
from .models import Cache, DecoderModel, EncoderDecoderModel, EncoderModel, ModelOutput, StackformModel
from .interop import InteropError, export_hf, import_hf  # Hugging Face folders in and out
from . import train  # a callable package: train(spec, ...) runs training
from .train import TrainResult, TrainingError
from .version import __version__

__all__ = [
    "Cache", "CheckpointError", "DecoderModel", "EncoderDecoderModel", "EncoderModel", "GenerationError",
    "ModelInputError", "ModelOutput", "Spec", "SpecError", "StackformError", "StackformModel", "__version__", "assemble",
    "build_model", "generate", "generate_seq2seq", "load", "load_spec", "save",
    "TrainResult", "TrainingError", "train",
]
__all__ += ["InteropError", "export_hf", "import_hf"]
