"""Generation: KV-cache decoding, greedy / temperature / top-k / top-p sampling, beam search."""

from .beam import beam_search, length_penalty
from .checks import GenerationError
from .decoder import generate
from .sampling import filter_top_k, filter_top_p, next_token
from .seq2seq import generate_seq2seq

__all__ = [
    "GenerationError", "beam_search", "filter_top_k", "filter_top_p", "generate", "generate_seq2seq",
    "length_penalty", "next_token",
]
