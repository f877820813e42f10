"""Padded batches generate what their rows generate alone, for every registered positional type;
every mask form is read the same way by ``model()`` and by generation."""

from __future__ import annotations

import functools

import pytest
import torch

from stackform import registry
from stackform.assemble import GenerationError, ModelInputError, assemble, generate, generate_seq2seq
from stackform.blocks import Positional

VOCAB, MAX_LEN, PAD, BOS, EOS = 23, 16, 0, 1, 2
LENGTHS = [5, 2, 7, 3]  # prompt / source lengths of one batch


def tiny(kind: str = "decoder", **model) -> dict:
    spec = {
        "name": f"tiny-{kind}",
        "model": {"kind": kind, "vocab_size": VOCAB, "max_len": MAX_LEN, "d_model": 32, "n_heads": 4,
                  "n_layers": 2, "pad_id": PAD, "bos_id": BOS, "eos_id": EOS, "init_std": 0.5,
                  "ffn": {"type": "mlp", "hidden": 64}, **model},
    }
    if kind == "encoder_decoder":
        spec["train"] = {"data": {"type": "builtin", "name": "copy"}}
    return spec


def build(spec: dict, seed: int = 0):
    """The model of ``spec`` with its positional parameters (if any) large enough to matter."""
    model = assemble(spec, seed=seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, Positional):
                for param in module.parameters():
                    param.normal_(0, 1.0)
    return model


def rows(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, VOCAB, (n,), generator=g) for n in LENGTHS]


def padded(seqs: list[torch.Tensor], side: str, pad: int = PAD) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """[b, t] ids, their bool mask and each row's first column; ``side``: left, right or hole
    (right padding plus one pad inside the row, after its first token)."""
    width = max(len(s) for s in seqs) + (side == "hole")
    ids = torch.full((len(seqs), width), pad)
    mask = torch.zeros(len(seqs), width, dtype=torch.bool)
    starts = []
    for i, s in enumerate(seqs):
        start = width - len(s) if side == "left" else 0
        cols = torch.arange(start, start + len(s))
        if side == "hole":
            cols = torch.cat((cols[:1], cols[1:] + 1))
        ids[i, cols], mask[i, cols] = s, True
        starts.append(start)
    return ids, mask, starts


POSITIONALS = registry.names("positional")


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("positional", POSITIONALS)
def test_padded_prompts_continue_as_alone(positional, side, use_cache):
    model = build(tiny(positional=positional))
    prompts = rows()
    ids, mask, starts = padded(prompts, side)
    free = [generate(model, p[None], 8, temperature=0, eos_id=-1, use_cache=use_cache)[0] for p in prompts]
    for eos in (-1, int(free[1][len(prompts[1]) + 2])):  # never stop; then stop at a token row 1 emits
        alone = [generate(model, p[None], 8, temperature=0, eos_id=eos, use_cache=use_cache)[0] for p in prompts]
        out = generate(model, ids, 8, attention_mask=mask, temperature=0, eos_id=eos, use_cache=use_cache)
        for i, (row, start) in enumerate(zip(alone, starts)):
            assert torch.equal(out[i, start : start + len(row)], row), (i, eos, out[i], row)
            assert (out[i, start + len(row):] == PAD).all()  # fill after eos / after the row's own end
            assert torch.equal(out[i, :start], ids[i, :start])  # left pads stay as given
        assert out.shape[1] == max(start + len(row) for row, start in zip(alone, starts))


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("positional", POSITIONALS)
def test_padded_sources_translate_as_alone(positional, side, use_cache):
    model = build(tiny("encoder_decoder", positional=positional))
    sources = rows(1)
    src, mask, _ = padded(sources, side)
    for beam in (1, 2):
        alone = [generate_seq2seq(model, s[None], 6, beam=beam, eos_id=-1, use_cache=use_cache)[0] for s in sources]
        out = generate_seq2seq(model, src, 6, beam=beam, src_mask=mask, eos_id=-1, use_cache=use_cache)
        assert torch.equal(out, torch.stack(alone)), beam


def _decoder_masks() -> list[tuple[str, list]]:
    """Every registered mask as tests/variants.py puts it in a decoder (with causal where it needs it)."""
    from variants import mask_variants

    return [(e.name, masks) for e in registry.list_blocks() if e.kind == "mask"
            for kind, masks in mask_variants(e) if kind == "decoder"]


DECODER_MASKS = _decoder_masks()


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("masks", [m for _, m in DECODER_MASKS], ids=[i for i, _ in DECODER_MASKS])
def test_padded_prompts_with_every_mask(masks, side):
    """Every registered decoder mask (a padding mask that derives pads from pad_id, a window, a
    prefix_lm whose prefix every prompt holds): padded rows still continue as alone."""
    model = build(tiny(mask=masks, positional="learned"))
    prompts = [p for p in rows(4) if len(p) >= 3]  # a prefix_lm's prefix (3) fits every prompt
    ids, mask, starts = padded(prompts, side)
    out = generate(model, ids, 6, attention_mask=mask, temperature=0, eos_id=-1)
    for i, (p, start) in enumerate(zip(prompts, starts)):
        alone = generate(model, p[None], 6, temperature=0, eos_id=-1)[0]
        assert torch.equal(out[i, start : start + len(alone)], alone), i


@pytest.mark.parametrize("seed", range(4))
def test_random_layouts_continue_as_alone(seed):
    """Random lengths, each row padded on both sides by a random amount, decoder and encoder-decoder."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 8, (5,), generator=g).tolist()
    width = max(lengths) + 3
    ids = torch.randint(3, VOCAB, (5, width), generator=g)
    mask = torch.zeros(5, width, dtype=torch.bool)
    starts = [int(torch.randint(0, width - n + 1, (1,), generator=g)) for n in lengths]
    for i, (n, start) in enumerate(zip(lengths, starts)):
        mask[i, start : start + n] = True
    ids = ids.masked_fill(~mask, PAD)
    decoder, s2s = build(tiny(positional="learned"), seed=seed), build(tiny("encoder_decoder"), seed=seed)
    out = generate(decoder, ids, 5, attention_mask=mask, temperature=0, eos_id=-1)
    src_out = generate_seq2seq(s2s, ids, 5, src_mask=mask, eos_id=-1)
    for i, (n, start) in enumerate(zip(lengths, starts)):
        row = ids[i, start : start + n][None]
        alone = generate(decoder, row, 5, temperature=0, eos_id=-1)[0]
        assert torch.equal(out[i, start : start + n + 5], alone) and (out[i, start + n + 5:] == PAD).all()
        assert torch.equal(src_out[i], generate_seq2seq(s2s, row, 5, eos_id=-1)[0])


def test_a_pad_inside_a_row_is_dropped():
    model = build(tiny(positional="learned"))
    prompts = rows(2)
    ids, mask, _ = padded(prompts, "hole")
    out = generate(model, ids, 5, attention_mask=mask, temperature=0, eos_id=-1)
    for i, p in enumerate(prompts):
        alone = generate(model, p[None], 5, temperature=0, eos_id=-1)[0]
        end = len(p) + 1  # the row's last real column + 1
        assert torch.equal(out[i, end : end + 5], alone[len(p):])


def test_each_row_stops_at_max_len():
    model = build(tiny())
    prompts = [torch.arange(3, 3 + n) % VOCAB for n in (MAX_LEN - 2, 3)]
    ids, mask, starts = padded(prompts, "right")
    out = generate(model, ids, 50, attention_mask=mask, temperature=0, eos_id=-1)
    for i, p in enumerate(prompts):
        alone = generate(model, p[None], 50, temperature=0, eos_id=-1)[0]
        assert len(alone) == MAX_LEN and torch.equal(out[i, :MAX_LEN], alone)


def test_the_shortest_prompt_runs_at_once_then_one_token_per_step():
    model = build(tiny())
    fed = []
    hook = model.embed.register_forward_hook(lambda mod, args, out: fed.append(args[0].shape[1]))
    ids, mask, _ = padded(rows(), "left")
    try:
        generate(model, ids, 3, attention_mask=mask, temperature=0, eos_id=-1)
    finally:
        hook.remove()
    # the shortest prompt (2) at once, the longer rows' remaining prompt tokens one per step (forced)
    assert fed == [2] + [1] * (max(LENGTHS) - 2 + 3 - 1)


def test_a_row_without_tokens_is_refused():
    model = build(tiny())
    ids, mask, _ = padded(rows(), "left")
    mask[2] = False
    with pytest.raises(GenerationError, match=r"^generate: attention_mask row 2 holds no real token"):
        generate(model, ids, 3, attention_mask=mask)
    s2s = build(tiny("encoder_decoder"))
    with pytest.raises(GenerationError, match=r"^generate_seq2seq: src_mask row 2 holds no real token"):
        generate_seq2seq(s2s, ids, 3, src_mask=mask)


# ---- every mask form, read the same way by model() and by generation ------------------------------

def _forms(keep: torch.Tensor) -> dict:
    """Mask forms of the keep-mask ``keep`` [b, t]: name -> the mask (or what is passed instead)."""
    additive = torch.zeros(keep.shape).masked_fill(~keep, float("-inf"))
    return {
        "bool": keep,
        "int64": keep.long(),
        "int32": keep.int(),
        "uint8": keep.to(torch.uint8),
        "float32": keep.float(),
        "float64": keep.double(),
        "bfloat16": keep.to(torch.bfloat16),
        "additive-inf": additive,
        "additive-large": torch.zeros(keep.shape).masked_fill(~keep, -1e9),
        "two": keep.long() * 2,
        "nan": keep.float().masked_fill(~keep, float("nan")),
        "complex": keep.to(torch.complex64),
        "meta": keep.to("meta"),
        "short": keep[:, :-1],
        "3d": keep[:, None],
        "list": keep.tolist(),
    }


ACCEPTED = {"bool", "int64", "int32", "uint8", "float32", "float64", "bfloat16"}
KINDS = ["decoder", "encoder", "encoder_decoder"]


@functools.lru_cache(maxsize=None)
def _model_of_kind(kind: str):
    return build(tiny(kind)).eval()


def _outcome(call):
    try:
        return call()
    except ModelInputError as exc:
        assert "\n" not in str(exc)
        return exc


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", sorted(_forms(torch.ones(1, 1, dtype=torch.bool))))
def test_every_mask_form_reads_the_same_in_model_and_generation(kind, form):
    model = _model_of_kind(kind)
    seqs = rows(3)
    ids, keep, _ = padded(seqs, "right")
    mask = _forms(keep)[form]
    tgt = torch.full((len(seqs), 3), BOS)

    def call(m):
        with torch.no_grad():
            return model(ids, tgt, src_mask=m) if kind == "encoder_decoder" else model(ids, m)

    got, expected = _outcome(lambda: call(mask)), call(keep)
    assert isinstance(got, ModelInputError) == (form not in ACCEPTED), got
    if form in ACCEPTED:
        assert torch.equal(got, expected)
    if kind == "encoder":
        return  # encoders do not generate
    if kind == "decoder":
        generated = _outcome(lambda: generate(model, ids, 4, attention_mask=mask, temperature=0, eos_id=-1))
        reference = generate(model, ids, 4, attention_mask=keep, temperature=0, eos_id=-1)
        where = "generate"
    else:
        generated = _outcome(lambda: generate_seq2seq(model, ids, 4, src_mask=mask, eos_id=-1))
        reference = generate_seq2seq(model, ids, 4, src_mask=keep, eos_id=-1)
        where = "generate_seq2seq"
    if form in ACCEPTED:
        assert torch.equal(generated, reference)
    else:  # refused by generation exactly as by the model
        assert isinstance(generated, GenerationError) and str(generated) == f"{where}: {got}"


def test_ids_and_masks_on_another_device_are_one_line():
    model, s2s = _model_of_kind("decoder"), _model_of_kind("encoder_decoder")
    ids, mask, _ = padded(rows(), "left")
    with pytest.raises(GenerationError, match=r"^generate: prompt_ids: is on meta, the model's weights on cpu"):
        generate(model, ids.to("meta"), 3)
    with pytest.raises(GenerationError, match=r"^generate_seq2seq: src_ids: is on meta, the model's weights on cpu"):
        generate_seq2seq(s2s, ids.to("meta"), 3)
    with pytest.raises(GenerationError, match=r"^generate: attention_mask: is on meta, the ids on cpu"):
        generate(model, ids, 3, attention_mask=mask.to("meta"))
