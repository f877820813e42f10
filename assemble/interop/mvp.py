"""MVP (``MvpForConditionalGeneration``): BART's architecture and tensor names under another ``model_type``;
the prompt-tuned variants (``use_prompt: true``, extra prompt tables in every layer) are refused. Export picks
``bart`` for such a spec unless ``--family mvp`` is named."""

from __future__ import annotations

from typing import Any

from .bart import BART
from .family import Config


class MVP(BART):
    """Hugging Face MVP without prompts."""

    name = "mvp"
    model_types = ("mvp",)
    architecture = "MvpForConditionalGeneration"

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        if config.get("use_prompt", False):
            raise config.unsupported("use_prompt", True, "false (no prompt tables)")
        return super().spec(config, names)


FAMILY = MVP()
