"""Hugging Face's own implementation of a variant, for ``stackform bench --variants --peers``.

Each peer has the shape of the variants' decoder (d_model 256, 8 heads, 2 layers, vocab 259, FFN
1024) and trains the same step (forward + backward of the next-token loss, no optimizer):

- ``sliding_window 256``: Mistral (``sliding_window=256``; its FFN is SwiGLU, 3 matrices of 1024);
- ``alibi``: BLOOM (ALiBi, GELU MLP of 4 x d_model = 1024);
- ``relative_bias (T5)``: T5's decoder stack (causal self-attention with the bucketed relative bias,
  no encoder: its cross-attention is skipped), a linear head.

Attention is SDPA where the model supports it (``attn_implementation="sdpa"``), else eager.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

VOCAB, D_MODEL, HEADS, LAYERS, FFN = 259, 256, 8, 2, 1024


def _mistral(seq: int) -> nn.Module:
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(vocab_size=VOCAB, hidden_size=D_MODEL, intermediate_size=FFN, num_hidden_layers=LAYERS,
                           num_attention_heads=HEADS, num_key_value_heads=HEADS, sliding_window=256,
                           max_position_embeddings=seq, attn_implementation="sdpa", use_cache=False)
    return MistralForCausalLM(config)


def _bloom(seq: int) -> nn.Module:
    from transformers import BloomConfig, BloomForCausalLM

    config = BloomConfig(vocab_size=VOCAB, hidden_size=D_MODEL, n_layer=LAYERS, n_head=HEADS, use_cache=False,
                         hidden_dropout=0.0, attention_dropout=0.0)
    config._attn_implementation = "eager"  # BLOOM has one attention path (ALiBi added to the scores)
    return BloomForCausalLM(config)


class _T5Decoder(nn.Module):
    """T5's decoder stack alone as a language model: embeddings, the stack, a linear head."""

    def __init__(self, seq: int):
        super().__init__()
        from transformers import T5Config
        from transformers.models.t5.modeling_t5 import T5Stack

        config = T5Config(vocab_size=VOCAB, d_model=D_MODEL, d_kv=D_MODEL // HEADS, d_ff=FFN, num_layers=LAYERS,
                          num_heads=HEADS, dropout_rate=0.0, is_decoder=True, use_cache=False,
                          feed_forward_proj="gelu", is_encoder_decoder=False)
        self.stack = T5Stack(config)  # [its own token embeddings]
        self.head = nn.Linear(D_MODEL, VOCAB, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.stack(input_ids=input_ids).last_hidden_state)


PEERS: dict[str, tuple[str, Callable[[int], nn.Module]]] = {
    # the stackform variant it is compared with: (peer's name, builder)
    "sliding_window 256": ("hf mistral (window)", _mistral),
    "alibi": ("hf bloom (alibi)", _bloom),
    "relative_bias (T5)": ("hf t5 (bias)", _T5Decoder),
}


class Peer:
    """One Hugging Face model and its training step, timed like a Variant."""

    kernel = "hf"

    def __init__(self, variant: str, seq: int, device: torch.device):
        self.name, build = PEERS[variant]
        self.variant, self.samples = variant, []
        torch.manual_seed(0)
        self.model = build(seq).to(device).train()
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 256, (1, seq + 1), generator=g).to(device)

    def step(self) -> None:
        with torch.autocast(self.ids.device.type, dtype=torch.bfloat16, enabled=self.ids.device.type == "cuda"):
            out = self.model(self.ids[:, :-1])
        logits = out if isinstance(out, torch.Tensor) else out.logits  # [1, t, vocab]
        F.cross_entropy(logits.flatten(0, 1).float(), self.ids[:, 1:].flatten()).backward()
        self.model.zero_grad(set_to_none=True)


def peers(names: list[str], seq: int, device: torch.device, log=print) -> list[Peer]:
    """The peers of the variants in ``names`` (none when transformers is not installed)."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        log("  (transformers not installed: pip install 'stackform[hf]' for the Hugging Face peers)")
        return []
    return [Peer(n, seq, device) for n in names if n in PEERS]
