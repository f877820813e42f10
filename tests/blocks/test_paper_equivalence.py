"""Our post-norm ReLU encoder-decoder computes exactly what torch.nn.Transformer computes.

Weights are copied from a torch.nn.Transformer (dropout 0) into the assembled model;
given the same embedded inputs, both produce the same decoder states to 1e-5. This
shows the blocks implement the paper's formulas (attention, FFN, Add & Norm, masks).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stackform.assemble import assemble

D, HEADS, FFN, LAYERS, VOCAB = 32, 4, 64, 2, 31


def _spec() -> dict:
    return {
        "name": "paper",
        "model": {
            "kind": "encoder_decoder", "vocab_size": VOCAB, "max_len": 16, "d_model": D, "n_heads": HEADS,
            "n_layers": LAYERS, "dropout": 0.0, "positional": "sinusoidal", "residual": "post",
            "norm": {"type": "layernorm", "eps": 1e-5}, "attention": "mha",
            "ffn": {"type": "mlp", "activation": "relu", "hidden": FFN},
            "final_norm": True,  # torch.nn.Transformer ends both stacks with a LayerNorm
            "pad_id": 0,
        },
    }


def _copy_attention(ours, theirs: nn.MultiheadAttention, cross: bool) -> None:
    w, b = theirs.in_proj_weight, theirs.in_proj_bias  # [3d, d]: q | k | v
    if cross:
        ours.q.weight.copy_(w[:D]), ours.q.bias.copy_(b[:D])
        ours.kv.weight.copy_(w[D:]), ours.kv.bias.copy_(b[D:])
    else:
        ours.qkv.weight.copy_(w), ours.qkv.bias.copy_(b)
    ours.out.weight.copy_(theirs.out_proj.weight), ours.out.bias.copy_(theirs.out_proj.bias)


def _copy_norm(ours: nn.LayerNorm, theirs: nn.LayerNorm) -> None:
    ours.weight.copy_(theirs.weight), ours.bias.copy_(theirs.bias)


def _copy_ffn(ours, theirs) -> None:
    ours.up.weight.copy_(theirs.linear1.weight), ours.up.bias.copy_(theirs.linear1.bias)
    ours.down.weight.copy_(theirs.linear2.weight), ours.down.bias.copy_(theirs.linear2.bias)


@torch.no_grad()
def _copy(model, ref: nn.Transformer) -> None:
    for ours, theirs in zip(model.encoder.layers, ref.encoder.layers):
        _copy_attention(ours.self_attn, theirs.self_attn, cross=False)
        _copy_norm(ours.self_res.norm, theirs.norm1)
        _copy_ffn(ours.ffn, theirs)
        _copy_norm(ours.ffn_res.norm, theirs.norm2)
    for ours, theirs in zip(model.decoder.layers, ref.decoder.layers):
        _copy_attention(ours.self_attn, theirs.self_attn, cross=False)
        _copy_norm(ours.self_res.norm, theirs.norm1)
        _copy_attention(ours.cross_attn, theirs.multihead_attn, cross=True)
        _copy_norm(ours.cross_res.norm, theirs.norm2)
        _copy_ffn(ours.ffn, theirs)
        _copy_norm(ours.ffn_res.norm, theirs.norm3)
    _copy_norm(model.encoder.final_norm, ref.encoder.norm)
    _copy_norm(model.decoder.final_norm, ref.decoder.norm)


@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_matches_torch_nn_transformer(padded):
    torch.manual_seed(0)
    ref = nn.Transformer(D, HEADS, LAYERS, LAYERS, FFN, dropout=0.0, activation="relu", batch_first=True).eval()
    for p in ref.parameters():  # break the symmetric init so every weight matters
        nn.init.normal_(p, std=0.2)
    model = assemble(_spec()).eval()
    _copy(model, ref)

    src = torch.randint(1, VOCAB, (3, 9))
    tgt = torch.randint(1, VOCAB, (3, 6))
    src_mask = torch.ones_like(src, dtype=torch.bool)
    if padded:
        src_mask[0, 5:] = False
        src_mask[2, 7:] = False
        src[~src_mask] = 0
    memory, memory_padding = model.encode(src, src_mask if padded else None)
    hidden = model.decode(tgt, memory, memory_padding)

    src_x = model.src_embed(src, model.encoder.positional, torch.arange(9))
    tgt_x = model.tgt_embed(tgt, model.decoder.positional, torch.arange(6))
    causal = nn.Transformer.generate_square_subsequent_mask(6)
    pad = ~src_mask if padded else None
    expected = ref(src_x, tgt_x, tgt_mask=causal, src_key_padding_mask=pad, memory_key_padding_mask=pad,
                   tgt_is_causal=True)
    torch.testing.assert_close(hidden, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(memory, ref.encoder(src_x, src_key_padding_mask=pad), rtol=0, atol=1e-5)
