"""Pictures of models: attention maps (heatmaps and an interactive page), architecture
diagrams and run comparisons. matplotlib is imported only when a picture is drawn.
"""

from .attention import AttentionMap, Generation, attention_maps, generated_attention, model_attention, text_attention
from .errors import VizError

__all__ = ["AttentionMap", "Generation", "VizError", "attention_maps", "generated_attention", "model_attention",
           "text_attention"]
