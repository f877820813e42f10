"""stackform.blocks: the registered Transformer components (importing this registers them)."""

from . import attention, ffn, masks, norms, positional, residual  # noqa: F401  (registration)
from .attention import LayerCache, MultiHeadAttention
from .context import AttentionContext
from .embeddings import TokenEmbedding
from .heads import LMHead
from .init import init_weights
from .layers import Stack, TransformerLayer
from .masks import Mask, MaskInfo
from .positional import Positional

__all__ = [
    "AttentionContext", "LMHead", "LayerCache", "Mask", "MaskInfo", "MultiHeadAttention", "Positional",
    "Stack", "TokenEmbedding", "TransformerLayer", "init_weights",
]
