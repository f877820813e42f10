"""Compact per-layer settings: rules (``every`` / ``offset``) expand to the long form's layers, and a
layer's own positional (a rope base per layer group) works with the KV cache and packed documents."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from stackform.assemble import assemble, generate, load, save
from stackform.specs import load_spec

LOCAL = {"type": "gqa", "n_kv_heads": 2, "window": 3}
GLOBAL = {"type": "gqa", "n_kv_heads": 2}
ROPE_LOCAL, ROPE_GLOBAL = {"type": "rope", "theta": 10000.0}, {"type": "rope", "theta": 1000000.0}


def _spec(layers=None, n_layers=None, **model) -> dict:
    spec = {"name": "rules", "model": {"kind": "decoder", "vocab_size": 23, "max_len": 16, "d_model": 16,
                                       "n_heads": 4, "init_std": 0.5, "attention": LOCAL, "positional": ROPE_LOCAL,
                                       **model}}
    if n_layers is not None:
        spec["model"]["n_layers"] = n_layers
    if layers is not None:
        spec["model"]["layers"] = layers
    return spec


def _long_form(every: int, offset: int, n_layers: int, block: dict) -> list[dict]:
    return [{"repeat": 1, **(block if i % every == offset else {})} for i in range(n_layers)]


@pytest.mark.parametrize("n_layers", [1, 2, 5, 7])
@pytest.mark.parametrize("every, offset", [(1, 0), (2, 0), (2, 1), (3, 2), (6, 5)])
def test_a_rule_expands_to_the_long_forms_layers(every, offset, n_layers):
    if offset >= n_layers:
        return  # a rule that sets no layer is refused (below)
    block = {"attention": GLOBAL, "positional": ROPE_GLOBAL}
    compact = load_spec(_spec([{"every": every, "offset": offset, **block}], n_layers)).model.plan("decoder")
    long = load_spec(_spec(_long_form(every, offset, n_layers, block))).model.plan("decoder")
    assert compact.layers == long.layers
    assert [layer.attention.params.window for layer in compact.layers] == [
        None if i % every == offset else 3 for i in range(n_layers)]
    assert sum(repeat for _, repeat in compact.groups) == n_layers


def _same_model(a: dict, b: dict, ids: torch.Tensor) -> None:
    ma, mb = assemble(a, seed=0).eval(), assemble(b, seed=0).eval()
    sa, sb = ma.state_dict(), mb.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    with torch.no_grad():
        assert torch.equal(ma(ids), mb(ids))


def test_gemma3_pattern_is_the_same_model_as_its_long_form():
    """Five local layers (window, rope base 10k) then a global one (rope base 1M), over 8 layers."""
    ids = torch.randint(3, 23, (2, 12), generator=torch.Generator().manual_seed(0))
    rule = {"every": 6, "offset": 5, "attention": GLOBAL, "positional": ROPE_GLOBAL}
    long = [{"repeat": 5}, {"repeat": 1, "attention": GLOBAL, "positional": ROPE_GLOBAL}, {"repeat": 2}]
    _same_model(_spec([rule], 8), _spec(long), ids)
    model = assemble(_spec([rule], 8), seed=0)
    assert model.stack.positional_index == [None] * 5 + [0] + [None] * 2
    with torch.no_grad():  # the global layer's own rope base matters
        other = assemble(_spec([{**rule, "positional": ROPE_LOCAL}], 8), seed=0)
        assert not torch.allclose(model.eval()(ids), other.eval()(ids), atol=1e-4)


def test_gpt_neo_alternation_is_the_zoos_long_form():
    zoo = load_spec("gpt-neo-125m").model
    local = zoo.plan("decoder").layers[1].attention.model_dump()
    rule = "model.layers=" + json.dumps([{"every": 2, "offset": 1, "attention": local}])
    compact = load_spec("gpt-neo-125m", [rule]).model
    assert compact.plan("decoder").layers == zoo.plan("decoder").layers
    tiny = ["model.d_model=16", "model.n_heads=2", "model.vocab_size=50", "model.max_len=16",
            "model.bos_id=1", "model.eos_id=1"]
    long = load_spec("gpt-neo-125m", tiny).model_dump(mode="json")
    short = load_spec("gpt-neo-125m", tiny + [rule])
    _same_model(long, short.model_dump(mode="json"), torch.randint(3, 50, (2, 10)))


def test_rules_apply_after_the_runs_and_a_later_rule_wins():
    runs = [{"repeat": 2, "ffn": {"type": "swiglu"}}, {"repeat": 2}]
    rules = [{"every": 2, "attention": GLOBAL}, {"every": 4, "offset": 2, "attention": LOCAL | {"window": 5}}]
    plan = load_spec(_spec(runs + rules)).model.plan("decoder")
    assert [layer.ffn.type for layer in plan.layers] == ["swiglu", "swiglu", "mlp", "mlp"]
    assert [layer.attention.params.window for layer in plan.layers] == [None, 3, 5, 3]


def test_a_layers_own_positional_is_the_stacks_when_every_layer_has_it():
    """Every layer with its own rope base 1M computes what a stack rope with base 1M computes (padding too)."""
    ids = torch.randint(3, 23, (2, 12), generator=torch.Generator().manual_seed(0))
    own = assemble(_spec([{"every": 1, "positional": ROPE_GLOBAL}], 3), seed=0).eval()
    stack = assemble(_spec(None, 3, positional=ROPE_GLOBAL), seed=0).eval()
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, :4] = False  # left padding
    with torch.no_grad():
        torch.testing.assert_close(own(ids), stack(ids), rtol=0, atol=0)
        torch.testing.assert_close(own(ids, attention_mask=mask), stack(ids, attention_mask=mask), rtol=0, atol=0)


@pytest.mark.parametrize("positional", [ROPE_GLOBAL, {"type": "alibi"}, {"type": "relative_bias"}])
def test_own_positionals_with_the_kv_cache_and_packed_documents(positional):
    spec = _spec([{"every": 3, "offset": 1, "attention": GLOBAL, "positional": positional}], 4)
    model = assemble(spec, seed=0)
    prompt = torch.randint(3, 23, (2, 3), generator=torch.Generator().manual_seed(1))
    cached = generate(model, prompt, 10, temperature=0, eos_id=-1)
    assert torch.equal(cached, generate(model, prompt, 10, temperature=0, eos_id=-1, use_cache=False))
    ids = torch.randint(3, 23, (1, 12), generator=torch.Generator().manual_seed(2))
    docs = torch.tensor([[0] * 5 + [1] * 7])
    with torch.no_grad():
        alone = torch.cat([model.eval()(ids[:, :5]), model(ids[:, 5:])], dim=1)
        torch.testing.assert_close(model(ids, document_ids=docs), alone, rtol=1e-5, atol=1e-5)


def test_a_learned_own_positional_trains_and_round_trips(tmp_path):
    spec = _spec([{"every": 2, "positional": {"type": "relative_bias"}}], 4)
    model = assemble(spec, seed=0)
    model(torch.randint(3, 23, (2, 9))).square().mean().backward()
    table = [p for n, p in model.named_parameters() if n.startswith("stack.layer_positionals.0.")]
    assert table and all(p.grad is not None and p.grad.abs().sum() > 0 for p in table)
    save(model.eval(), tmp_path / "m.safetensors")
    again = load(tmp_path / "m.safetensors").eval()
    ids = torch.randint(3, 23, (2, 9))
    assert again.spec == model.spec
    assert torch.equal(again(ids), model(ids))


@pytest.mark.parametrize("layers, n_layers, message", [
    ([{"every": 3, "offset": 3}], 6, "model.layers.0.offset: offset (3) must be below every (3)"),
    ([{"every": 3, "repeat": 2}], 6, "model.layers.0.repeat: a rule (every) lays out no layers"),
    ([{"offset": 1}], 6, "model.layers.0.offset: offset belongs to a rule: add every"),
    ([{"repeat": 6, "offset": 2}], 6, "model.layers.0.offset: offset belongs to a rule: add every"),
    ([{"every": 7, "offset": 6}], 6, "model.layers.0.offset: the rule sets no layer: offset 6 is past the decoder's 6"),
    ([{"every": 2}], None, "model.n_layers: the decoder has no layers (rules with every lay out no layers)"),
    ([{"every": 2, "positional": "learned"}], 4, "model.layers.0.positional.type: 'learned' acts on the embeddings"),
    ([{"every": 0}], 4, "model.layers.0.every: Input should be greater than 0"),
])
def test_bad_rules_are_one_located_line(layers, n_layers, message):
    from stackform.specs import SpecError

    with pytest.raises(SpecError) as err:
        load_spec(_spec(copy.deepcopy(layers), n_layers))
    assert str(err.value).startswith(f"<dict>: {message}"), str(err.value)
    assert "\n" not in str(err.value)


def test_the_docs_example_is_26_layers_with_every_sixth_global():
    import yaml
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "specs.md").read_text()
    example = text.split("```yaml\n")[2].split("```")[0]
    assert "name: local-global" in example
    plan = load_spec(yaml.safe_load(example)).model.plan("decoder")
    assert [layer.attention.params.window for layer in plan.layers] == [
        None if i % 6 == 5 else 512 for i in range(26)]
    assert [layer.positional.params.theta if layer.positional else None for layer in plan.layers] == [
        1e6 if i % 6 == 5 else None for i in range(26)]
