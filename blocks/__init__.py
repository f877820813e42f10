"""stackform.blocks: the registered Transformer components (importing this registers them)."""

from . import adapters, attention, embeddings, ffn, heads, layer_kinds, masks  # noqa: F401  (registration)
from . import moe, norms, positional, relative, residual  # noqa: F401  (registration)
from .attention import LayerCache, MultiHeadAttention
from .context import AttentionContext
from .embeddings import TokenEmbedding, TokenTypes
from .heads import LinearHead, LMHead, MLMHead
from .init import init_weights
from .layer_kinds import LayerParts, ParallelLayer, SequentialLayer, Sublayer, stack_final_norm
from .layers import Stack
from .masks import Mask, MaskInfo
from .positional import Positional

__all__ = [
    "AttentionContext", "LMHead", "LayerCache", "LinearHead", "MLMHead", "Mask", "MaskInfo", "MultiHeadAttention",
    "LayerParts", "ParallelLayer", "Positional", "SequentialLayer", "Stack", "Sublayer", "TokenEmbedding", "TokenTypes",
    "TransformerLayer", "init_weights", "stack_final_norm",
]

TransformerLayer = SequentialLayer  # the name before layers were a kind
