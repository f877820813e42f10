"""Logit soft-capping (Gemma 2): attention scores and final logits become cap * tanh(x / cap)."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch

from stackform import registry
from stackform.assemble import assemble, generate
from stackform.assemble.train.loss import chunked_cross_entropy
from stackform.blocks import dispatch, kernels
from variants import VOCAB, base_spec

POSITIONALS = [e for e in registry.list_blocks() if e.kind == "positional"]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(kernels, "CHUNK", 4)  # queries in chunks of 4: several per sequence
    warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")


def _spec(kind: str = "decoder", cap: float | None = 50.0, **model) -> dict:
    spec = base_spec(kind)
    attention = {"type": "gqa", "n_kv_heads": 2, **({"softcap": cap} if cap is not None else {})}
    spec["model"].update({"d_model": 32, "n_heads": 4, "n_layers": 2, "init_std": 0.5, "attention": attention, **model})
    return spec


def _with_weights_of(spec: dict, other):
    model = assemble(spec, seed=0)
    model.load_state_dict(other.state_dict())
    return model.eval()


def test_capped_attention_is_gemma2_eager_attention():
    """scores = q k^T / sqrt(d); cap * tanh(scores / cap); causal mask; softmax; weighted sum of v."""
    model = assemble(_spec(cap=0.5, n_layers=1), seed=0).eval()
    attn = model.stack.layers[0].self_attn
    x = torch.randn(2, 9, 32)
    ctx = model.stack.context(9, 0, x.device, None)
    got, _ = attn(x, ctx)
    q, k, v = attn.qkv(x).split((attn.q_size, attn.kv_size, attn.kv_size), dim=-1)
    q = q.view(2, 9, 4, 8).transpose(1, 2)
    k, v = (t.view(2, 9, 2, 8).transpose(1, 2).repeat_interleave(2, dim=1) for t in (k, v))
    q, k = ctx.rotate(q, k)
    scores = q @ k.transpose(-2, -1) / math.sqrt(8)
    scores = 0.5 * torch.tanh(scores / 0.5)
    scores = scores.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf"))
    want = attn.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 9, 32))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def _cases():
    out = []
    for kind in ("decoder", "encoder", "encoder_decoder"):
        for entry in POSITIONALS:
            out.append((kind, entry.name))
        out.append((kind, "window"))
    return out


@pytest.mark.parametrize("kind, variant", _cases(), ids=[f"{k}-{v}" for k, v in _cases()])
def test_a_far_cap_changes_nothing_and_a_near_one_does(kind, variant):
    """Every positional type (its bias added after the cap), windows, padding, every model kind: with a
    cap far above the scores the model is the uncapped one; with a small cap it is not."""
    extra = {"attention": {"type": "gqa", "n_kv_heads": 2, "window": 3}} if variant == "window" else {
        "positional": {"type": variant, **registry.example_params(registry.get("positional", variant))}}
    plain = assemble(_spec(kind, cap=None, **extra), seed=0).eval()
    far_spec, near_spec = _spec(kind, cap=1e4, **copy.deepcopy(extra)), _spec(kind, cap=0.1, **copy.deepcopy(extra))
    if variant == "window":
        far_spec["model"]["attention"]["softcap"] = 1e4
        near_spec["model"]["attention"]["softcap"] = 0.1
    far, near = _with_weights_of(far_spec, plain), _with_weights_of(near_spec, plain)
    g = torch.Generator().manual_seed(0)
    src = torch.randint(3, VOCAB, (2, 9), generator=g)
    mask = torch.ones_like(src, dtype=torch.bool)
    mask[0, 6:] = False
    args = (src, torch.randint(3, VOCAB, (2, 7), generator=g)) if kind == "encoder_decoder" else (src,)
    kw = {"src_mask": mask} if kind == "encoder_decoder" else {"attention_mask": mask} if kind == "encoder" else {}
    with torch.no_grad():
        want = plain(*args, **kw)
        torch.testing.assert_close(far(*args, **kw), want, rtol=1e-4, atol=1e-4)
        assert not torch.allclose(near(*args, **kw), want, atol=1e-3)


def test_gradients_of_chunked_queries_equal_one_chunk(monkeypatch):
    model = assemble(_spec(cap=0.5), seed=0)
    ids = torch.randint(3, VOCAB, (2, 11), generator=torch.Generator().manual_seed(0))
    grads = []
    for chunk in (4, 64):
        monkeypatch.setattr(kernels, "CHUNK", chunk)
        model.zero_grad()
        model(ids).square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-5, msg=name)


def test_weights_are_returned_when_asked():
    model = assemble(_spec(cap=0.5), seed=0).eval()
    ids = torch.randint(3, VOCAB, (1, 6))
    out = model(ids, return_attention=True)
    weights = out.attentions["self"]
    assert len(weights) == 2 and weights[0].shape == (1, 4, 6, 6)
    for w in weights:
        torch.testing.assert_close(w.sum(-1), torch.ones(1, 4, 6))
        assert torch.all(w.triu(1) == 0)
    torch.testing.assert_close(out.logits, model(ids), rtol=1e-5, atol=1e-5)


def test_cached_generation_equals_uncached():
    model = assemble(_spec(cap=0.5, max_len=16), seed=0)
    prompt = torch.randint(3, VOCAB, (2, 3), generator=torch.Generator().manual_seed(1))
    cached = generate(model, prompt, 10, temperature=0, eos_id=-1)
    assert torch.equal(cached, generate(model, prompt, 10, temperature=0, eos_id=-1, use_cache=False))


def test_final_logits_are_capped_and_the_training_loss_sees_the_cap():
    spec = _spec(cap=None)
    plain = assemble(spec, seed=0).eval()
    capped_spec = copy.deepcopy(spec)
    capped_spec["model"]["head"] = {"type": "linear", "softcap": 2.0}
    capped = _with_weights_of(capped_spec, plain)
    ids = torch.randint(3, VOCAB, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = capped(ids)
        torch.testing.assert_close(logits, 2.0 * torch.tanh(plain(ids) / 2.0))
        assert logits.abs().max() < 2.0
        hidden = capped(ids, logits=False).hidden
    labels = torch.randint(3, VOCAB, (2, 9))
    total, n = chunked_cross_entropy(capped.head, hidden, labels, select=False)
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), reduction="sum")
    torch.testing.assert_close(total, want)
    assert n == 18


@pytest.mark.parametrize("where, block", [("model.attention.softcap", {"attention": {"type": "mha", "softcap": 0}}),
                                          ("model.head.softcap", {"head": {"type": "linear", "softcap": -1.0}})])
def test_a_cap_must_be_positive(where, block):
    from stackform.specs import SpecError

    spec = base_spec("decoder")
    spec["model"].update(block)
    with pytest.raises(SpecError, match=rf"^<dict>: {where}: Input should be greater than 0"):
        assemble(spec)


BIASED = [e.name for e in POSITIONALS if getattr(e.cls, "biases", False)]


def _short_reach(name: str) -> dict:
    """The positional's example, with a bucketed bias's far distance within a 24-token sequence (far_near applies)."""
    entry = registry.get("positional", name)
    params = registry.example_params(entry)
    if "max_distance" in entry.params.model_fields:
        params.update(num_buckets=8, max_distance=8)
    return {"type": name, **params}


@pytest.mark.parametrize("kernel", sorted(dispatch.KERNELS))
@pytest.mark.parametrize("positional", BIASED)
def test_a_capped_biased_attention_is_the_dense_one_whatever_kernel_is_forced(positional, kernel):
    """The cap acts on the raw q.k scores, before the positional's bias: a kernel that folds the bias into
    q and k (folded) or splits far and near keys (far_near) must never serve a capped attention."""
    extra = {"positional": _short_reach(positional)}
    model = assemble(_spec(cap=0.5, n_layers=1, max_len=32, **extra), seed=0).eval()
    attn, t = model.stack.layers[0].self_attn, 24
    x = torch.randn(2, t, 32, generator=torch.Generator().manual_seed(0))
    ctx = model.stack.context(t, 0, x.device, None)
    with torch.no_grad(), dispatch.force(kernel):
        got, _ = attn(x, ctx)
    with torch.no_grad():
        q, k, v = attn.qkv(x).split((attn.q_size, attn.kv_size, attn.kv_size), dim=-1)
        q = q.view(2, t, 4, 8).transpose(1, 2)
        k, v = (s.view(2, t, 2, 8).transpose(1, 2).repeat_interleave(2, dim=1) for s in (k, v))
        q, k = ctx.rotate(q, k)
        scores = 0.5 * torch.tanh((q @ k.transpose(-2, -1) / math.sqrt(8)) / 0.5)
        bias = ctx.plan(None, 4).dense(0, t, 0, t, float_mask=True)  # the positional's bias, -inf above the diagonal
        want = attn.out(((scores + bias).softmax(-1) @ v).transpose(1, 2).reshape(2, t, 32))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
