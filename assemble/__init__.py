"""stackform.assemble: spec -> model, checkpoints, training, generation, the CLI.

Public API: ``assemble``, ``load_spec``, ``save``, ``load``, ``generate``,
``generate_seq2seq``, ``train``.
"""

from stackform.registry import StackformError
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
