"""Shared test settings: deterministic, single-threaded torch for small models."""

import os

os.environ.setdefault("STACKFORM_NO_PLUGINS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
