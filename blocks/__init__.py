"""stackform.blocks: the registered Transformer components (importing this registers them)."""

from . import attention, embeddings, ffn, heads, masks, moe, norms, positional, relative, residual  # noqa: F401  (registration)
from .attention import LayerCache, MultiHeadAttention
from .context import AttentionContext
from .embeddings import TokenEmbedding, TokenTypes
from .heads import LinearHead, LMHead, MLMHead
from .init import init_weights
from .layers import Stack, TransformerLayer
from .masks import Mask, MaskInfo
from .positional import Positional

__all__ = [
    "AttentionContext", "LMHead", "LayerCache", "LinearHead", "MLMHead", "Mask", "MaskInfo", "MultiHeadAttention",
    "Positional", "Stack", "TokenEmbedding", "TokenTypes", "TransformerLayer", "init_weights",
]
