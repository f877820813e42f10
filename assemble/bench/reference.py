"""A plain hand-written GPT (nanoGPT style) with the same math and parameters as a decoder spec.

It supports the specs the GPT-2 family uses: pre-norm LayerNorm, learned positions,
multi-head attention with a fused qkv projection on SDPA's causal path, an MLP, a head
tied to the token embedding (or not). It is written as a person would write it for
one model, with no registry, no spec and no injection.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stackform.specs import ModelSpec

ACT = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh")}


class Block(nn.Module):
    def __init__(self, d: int, heads: int, hidden: int, bias: bool, eps: float, act: str, dropout: float,
                 attn_dropout: float):
        super().__init__()
        self.heads, self.attn_dropout = heads, attn_dropout
        self.drop = nn.Dropout(dropout)
        self.ln1 = nn.LayerNorm(d, eps=eps, bias=bias)
        self.qkv = nn.Linear(d, 3 * d, bias=bias)
        self.proj = nn.Linear(d, d, bias=bias)
        self.ln2 = nn.LayerNorm(d, eps=eps, bias=bias)
        self.fc = nn.Linear(d, hidden, bias=bias)
        self.fc_out = nn.Linear(hidden, d, bias=bias)
        self.act = ACT[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q = q.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # [b, h, t, hd]
        k = k.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        v = v.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(b, t, d)))  # [b, t, d]
        return x + self.drop(self.fc_out(self.act(self.fc(self.ln2(x)))))


class ReferenceGPT(nn.Module):
    """wte + wpe -> blocks -> ln_f -> tied head; ``forward(idx, targets) -> mean cross-entropy``."""

    def __init__(self, model: ModelSpec):
        super().__init__()
        if model.kind != "decoder" or model.positional.type != "learned" or model.residual.type != "pre":
            raise ValueError("the reference GPT is written for pre-norm decoders with learned positions")
        if model.ffn.type != "mlp" or model.attention.type != "mha" or model.norm.type != "layernorm":
            raise ValueError("the reference GPT uses mha, mlp and layernorm")
        d, ffn = model.d_model, model.ffn.params
        hidden = ffn.hidden or int(ffn.multiplier * d)
        bias, eps = model.attention.params.bias, model.norm.params.eps
        self.wte = nn.Embedding(model.vocab_size, d)
        self.wpe = nn.Embedding(model.max_len, d)
        self.drop = nn.Dropout(model.dropout)
        self.blocks = nn.ModuleList(
            Block(d, model.n_heads, hidden, bias, eps, ffn.activation, model.dropout, model.attention.params.dropout)
            for _ in range(model.n_layers)
        )
        self.ln_f = nn.LayerNorm(d, eps=eps, bias=model.norm.params.bias)
        self.head = nn.Linear(d, model.vocab_size, bias=False)
        if model.tie_embeddings:
            self.head.weight = self.wte.weight
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * model.n_layers) if name.endswith(("proj.weight", "fc_out.weight")) else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(t, device=idx.device)))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))  # [b, t, vocab]
        return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.view(-1))
