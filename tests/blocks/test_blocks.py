"""Properties every registered block must have, in every model kind where it fits.

The cases come from the registry (tests/variants.py): a block that registers is
tested here without anyone adding a line.
"""

from __future__ import annotations

import pytest
import torch

from stackform import registry
from stackform.assemble import assemble, load, save
from variants import MAX_LEN, PAD, VOCAB, base_spec, is_causal, variants

CASES = variants()
IDS = [case_id for case_id, _ in CASES]
SPECS = [spec for _, spec in CASES]


def _model(spec: dict):
    model = assemble(spec, seed=0)
    model.eval()
    return model


def _inputs(kind: str, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, VOCAB, (batch, 9), generator=g)
    tgt = torch.randint(3, VOCAB, (batch, 7), generator=g)
    return (src, tgt) if kind == "encoder_decoder" else (src,)


def _run(model, inputs, **kw):
    return model(*inputs, **kw)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_output_shape_and_gradients(spec):
    model = assemble(spec, seed=0)
    model.train()
    inputs = _inputs(spec["model"]["kind"])
    logits = _run(model, inputs)
    assert logits.shape == (*inputs[-1].shape, VOCAB)
    logits.float().square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient reaches {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient in {name}"
        assert p.grad.abs().sum() > 0, f"zero gradient in {name}"


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_save_load_round_trip(spec, tmp_path):
    model = _model(spec)
    inputs = _inputs(spec["model"]["kind"])
    save(model, tmp_path / "m.safetensors")
    again = load(tmp_path / "m.safetensors").eval()
    assert again.spec == model.spec
    assert torch.equal(_run(model, inputs), _run(again, inputs))
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_a_round_trip_through_bf16_is_exact(spec):
    """model.to(bf16).float() gives exactly the outputs of the same (bf16-representable) weights in
    float32: computed tables (rope, sinusoids) are not rounded on the way (Positional.float32_tables)."""
    model = _model(spec)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())  # weights that bf16 holds exactly
    inputs = _inputs(spec["model"]["kind"])
    before = _run(model, inputs)
    after = _run(model.to(torch.bfloat16).float(), inputs)
    assert torch.equal(before, after)


CAUSAL = [(i, s) for i, s in CASES if is_causal(s)]


@pytest.mark.parametrize("spec", [s for _, s in CAUSAL], ids=[i for i, _ in CAUSAL])
def test_future_tokens_never_change_the_past(spec):
    model = _model(spec)
    inputs = list(_inputs(spec["model"]["kind"]))
    base = _run(model, inputs)
    t_len = inputs[-1].shape[1]
    for t in range(t_len - 1):
        changed = [x.clone() for x in inputs]
        changed[-1][:, t + 1:] = torch.randint(3, VOCAB, changed[-1][:, t + 1:].shape)
        out = _run(model, changed)
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-5)


PADDED = [(i, s) for i, s in CASES if s["model"]["kind"] in ("encoder", "encoder_decoder")]


@pytest.mark.parametrize("spec", [s for _, s in PADDED], ids=[i for i, _ in PADDED])
def test_padding_never_changes_real_positions(spec):
    """Pad keys are invisible: what stands in padded positions never changes real outputs."""
    model = _model(spec)
    kind = spec["model"]["kind"]
    inputs = list(_inputs(kind))
    src = inputs[0]
    mask = torch.ones_like(src, dtype=torch.bool)
    mask[0, 6:] = False  # the first row has 6 real tokens
    mask[1, 8:] = False
    a, b = src.clone(), src.clone()
    a[~mask] = PAD
    b[~mask] = torch.randint(3, VOCAB, (int((~mask).sum()),))
    if kind == "encoder":
        out_a, out_b = model(a, mask), model(b, mask)
        torch.testing.assert_close(out_a[mask], out_b[mask], rtol=0, atol=1e-5)
    else:
        tgt = inputs[1]
        torch.testing.assert_close(model(a, tgt, src_mask=mask), model(b, tgt, src_mask=mask), rtol=0, atol=1e-5)


def test_pad_id_hides_pad_tokens_without_a_mask():
    """Encoders with the padding mask derive it from pad_id when no attention_mask is given."""
    spec = dict(SPECS[0])
    model = _model({"name": "p", "model": {**spec["model"], "kind": "encoder", "mask": ["padding"]}})
    ids = torch.randint(3, VOCAB, (1, 8))
    padded = torch.cat([ids, torch.full((1, 3), PAD)], dim=1)
    torch.testing.assert_close(model(padded)[:, :8], model(ids), rtol=0, atol=1e-5)


def test_cases_cover_every_registered_block():
    from stackform import registry

    covered = {case_id.split("-")[1] for case_id in IDS}
    assert {e.name for e in registry.list_blocks() if e.kind in {"attention", "positional", "norm", "residual",
                                                              "ffn", "mask"}} <= covered
    assert MAX_LEN >= 9


MASK_ENTRIES = [e for e in registry.list_blocks() if e.kind == "mask"]


@pytest.mark.parametrize("entry", MASK_ENTRIES, ids=[e.name for e in MASK_ENTRIES])
@pytest.mark.parametrize("where", ["decoder", "encoder_decoder-shared", "encoder_decoder-decoder"])
def test_a_decoder_needs_a_mask_that_hides_the_future(entry, where):
    """Alone, a mask without ``hides_future`` (padding, sliding_window) lets a decoder position see the
    token it predicts, and KV-cache generation could not match: validation refuses it in one line."""
    from stackform.specs import SpecError

    block = {"type": entry.name, **registry.example_params(entry)}
    spec = base_spec(where.split("-")[0])
    if where == "encoder_decoder-decoder":
        spec["model"]["decoder"] = {"mask": [block]}
    else:
        spec["model"]["mask"] = [block]
    place = "model.decoder.mask" if where == "encoder_decoder-decoder" else "model.mask"
    if getattr(entry.cls, "hides_future", False):
        assemble(spec, seed=0)
        return
    with pytest.raises(SpecError, match=rf"^<dict>: {place}: a decoder needs causal \(or prefix_lm\) among its masks: "
                                        rf"with \[{entry.name}\] .*; use \[causal, {entry.name}\]") as err:
        assemble(spec, seed=0)
    assert "\n" not in str(err.value)
    spec = base_spec("decoder")
    spec["model"]["mask"] = ["causal", block]
    assemble(spec, seed=0)  # with causal it is fine


WINDOWED = [e for e in registry.list_blocks() if e.kind == "attention" and "window" in e.params.model_fields]


@pytest.mark.parametrize("entry", WINDOWED, ids=[e.name for e in WINDOWED])
@pytest.mark.parametrize("place", ["model", "decoder", "layers"])
def test_cross_attention_with_a_window_is_refused(entry, place):
    """Target and source positions are not comparable: a cross-attention window is one spec error."""
    from stackform.specs import SpecError

    block = {"type": entry.name, **registry.example_params(entry), "window": 2}
    spec = base_spec("encoder_decoder")
    model = spec["model"]
    if place == "model":
        model["cross_attention"], where = block, "model.cross_attention"
    elif place == "decoder":
        model["decoder"], where = {"cross_attention": block}, "model.decoder.cross_attention"
    else:
        model["layers"], where = [{"repeat": 2, "cross_attention": block}], "model.layers.0.cross_attention"
    with pytest.raises(SpecError, match=rf"^<dict>: {where}.window: cross-attention takes no window") as err:
        assemble(spec, seed=0)
    assert "\n" not in str(err.value)
    del block["window"]
    assemble(spec, seed=0)  # the same block without its window is fine
