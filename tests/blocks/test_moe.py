"""The mixture-of-experts FFN: routing as Mixtral / Qwen-MoE compute it, dropless dispatch equal to a
per-token reference for every registered expert type, the auxiliary losses and their gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from stackform import registry
from stackform.assemble import assemble
from stackform.blocks.moe import MixtureOfExperts
from stackform.blocks.protocol import Cost, CostContext
from stackform.registry import Dims
from stackform.specs import SpecError

DIMS = Dims(d_model=16, n_heads=2, head_dim=8, max_len=12, n_layers=1, vocab_size=23)
EXPERT_TYPES = [e.name for e in registry.list_blocks("ffn") if not getattr(e.cls, "sparse", False)]


def _moe(**params) -> MixtureOfExperts:
    torch.manual_seed(0)
    moe = MixtureOfExperts(DIMS, MixtureOfExperts.Params(**params))
    with torch.no_grad():
        for p in moe.parameters():
            p.normal_(0, 0.5)  # routing far from uniform
    return moe


def _reference(moe: MixtureOfExperts, x: torch.Tensor) -> torch.Tensor:
    """One token at a time: the sum of its top-k experts' outputs, weighted by the routing weights."""
    flat = x.reshape(-1, x.shape[-1])
    out = []
    for token in flat:
        probs = moe.router(token).float().softmax(-1)
        weights, experts = probs.topk(moe.top_k)
        if moe.norm_topk_prob:
            weights = weights / weights.sum()
        y = sum(w * moe.experts[int(e)](token[None])[0] for w, e in zip(weights, experts))
        if moe.shared is not None:
            shared = moe.shared(token[None])[0]
            y = y + (torch.sigmoid(moe.shared_gate(token)) * shared if moe.shared_gate is not None else shared)
        out.append(y)
    return torch.stack(out).reshape(x.shape)


@pytest.mark.parametrize("expert", EXPERT_TYPES)
@pytest.mark.parametrize("top_k, norm", [(1, True), (2, True), (3, False)])
def test_dispatch_equals_a_per_token_reference(expert, top_k, norm):
    moe = _moe(n_experts=4, top_k=top_k, expert={"type": expert}, norm_topk_prob=norm)
    x = torch.randn(3, 5, 16)
    torch.testing.assert_close(moe(x), _reference(moe, x), rtol=1e-5, atol=1e-5)


def test_shared_ffn_with_a_gate_equals_the_reference():
    moe = _moe(n_experts=3, top_k=2, shared={"type": "mlp", "hidden": 8}, shared_gate=True)
    x = torch.randn(2, 4, 16)
    torch.testing.assert_close(moe(x), _reference(moe, x), rtol=1e-5, atol=1e-5)


def test_the_compile_path_computes_the_same_sum():
    moe = _moe(n_experts=4, top_k=2, shared={"type": "swiglu", "hidden": 8})
    x = torch.randn(2, 6, 16)
    flat = x.reshape(-1, 16)
    _, weights, experts = moe.route(flat)
    torch.testing.assert_close(moe._dense(flat, weights, experts), moe._sparse(flat, weights, experts),
                               rtol=1e-5, atol=1e-6)


def test_an_expert_no_token_chose_still_runs_on_an_empty_slice():
    moe = _moe(n_experts=4, top_k=1)
    with torch.no_grad():
        moe.router.weight.zero_()
        moe.router.weight[2, 0] = 10.0  # every token with x[0] > 0 goes to expert 2, the others to expert 0
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(moe(x), _reference(moe, x), rtol=1e-5, atol=1e-5)


def _hf_block(family: str, norm_topk_prob: bool = True):
    transformers = pytest.importorskip("transformers")
    common = dict(hidden_size=16, num_experts_per_tok=2, hidden_act="silu", num_attention_heads=2, num_hidden_layers=1)
    if family == "mixtral":
        from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock as Block
        config = transformers.MixtralConfig(intermediate_size=24, num_local_experts=4, **common)
    elif family == "qwen3_moe":
        from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock as Block
        config = transformers.Qwen3MoeConfig(moe_intermediate_size=24, num_experts=4, norm_topk_prob=norm_topk_prob,
                                             **common)
    else:
        from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock as Block
        config = transformers.Qwen2MoeConfig(moe_intermediate_size=24, num_experts=4, norm_topk_prob=norm_topk_prob,
                                             shared_expert_intermediate_size=20, **common)
    torch.manual_seed(1)
    block = Block(config).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.3)
    return block


@pytest.mark.parametrize("family, norm", [("mixtral", True), ("qwen3_moe", True), ("qwen3_moe", False),
                                          ("qwen2_moe", False)])
def test_matches_hugging_face_sparse_moe_blocks(family, norm):
    """Mixtral / Qwen3-MoE / Qwen2-MoE weights in our block give their outputs (an importer maps names only)."""
    hf = _hf_block(family, norm)
    shared = {"shared": {"type": "swiglu", "hidden": 20}, "shared_gate": True} if family == "qwen2_moe" else {}
    ours = MixtureOfExperts(DIMS, MixtureOfExperts.Params(
        n_experts=4, top_k=2, expert={"type": "swiglu", "hidden": 24}, norm_topk_prob=norm, **shared)).eval()
    with torch.no_grad():
        ours.router.weight.copy_(hf.gate.weight)
        for e, expert in enumerate(ours.experts):
            expert.gate_up.weight.copy_(hf.experts.gate_up_proj[e])  # [gate | up], as ours
            expert.down.weight.copy_(hf.experts.down_proj[e])
        if shared:
            s = hf.shared_expert
            ours.shared.gate_up.weight.copy_(torch.cat((s.gate_proj.weight, s.up_proj.weight)))
            ours.shared.down.weight.copy_(s.down_proj.weight)
            ours.shared_gate.weight.copy_(hf.shared_expert_gate.weight)
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x), rtol=1e-5, atol=1e-5)


def test_balance_loss_is_switch_and_z_loss_is_st_moe():
    moe = _moe(n_experts=4, top_k=2, balance_loss=0.5, z_loss=0.25)
    x = torch.randn(3, 7, 16)
    moe(x)
    logits = moe.router(x.reshape(-1, 16))
    probs = logits.softmax(-1)
    chosen = torch.nn.functional.one_hot(probs.topk(2).indices, 4).float()  # [n, k, E]
    share = chosen.sum(1).mean(0) / 2  # fraction of the assignments per expert
    losses = moe.losses()
    assert set(losses) == {"moe_balance", "moe_z"}
    torch.testing.assert_close(losses["moe_balance"], 0.5 * 4 * (share * probs.mean(0)).sum())
    torch.testing.assert_close(losses["moe_z"], 0.25 * torch.logsumexp(logits, -1).square().mean())


def test_balance_loss_is_one_under_a_uniform_router_and_absent_at_weight_zero():
    moe = _moe(n_experts=4, top_k=2, balance_loss=1.0, z_loss=0.0)
    with torch.no_grad():
        moe.router.weight.zero_()
    moe(torch.randn(2, 3, 16))
    assert set(moe.losses()) == {"moe_balance"}
    torch.testing.assert_close(moe.losses()["moe_balance"], torch.tensor(1.0))


def test_the_routers_gradient_depends_on_the_auxiliary_losses():
    """Summed into the loss, the auxiliary losses change the router's gradient (and only through it)."""
    spec = {"name": "t", "model": {"kind": "decoder", "vocab_size": 23, "max_len": 12, "d_model": 16, "n_heads": 2,
                                   "n_layers": 2, "ffn": {"type": "moe", "n_experts": 4, "top_k": 2}}}
    ids = torch.randint(0, 23, (2, 9), generator=torch.Generator().manual_seed(0))

    def router_grads(with_aux: bool) -> list[torch.Tensor]:
        model = assemble(spec, seed=0)
        loss = model(ids).square().mean()
        moes = [m for m in model.modules() if callable(getattr(m, "losses", None))]
        assert len(moes) == 2
        if with_aux:
            loss = loss + sum(v for m in moes for v in m.losses().values())
        loss.backward()
        return [m.router.weight.grad.clone() for m in moes]

    plain, aux = router_grads(False), router_grads(True)
    for a, b in zip(plain, aux):
        assert not torch.allclose(a, b), "the auxiliary losses do not reach the router"
    model = assemble(spec, seed=0)
    model(ids)
    aux_only = sum(v for m in model.modules() if callable(getattr(m, "losses", None)) for v in m.losses().values())
    aux_only.backward()
    for name, p in model.named_parameters():
        if "router" in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_cost_counts_every_expert_stored_and_k_active():
    moe = _moe(n_experts=8, top_k=2, expert={"type": "swiglu", "hidden": 12}, shared={"type": "mlp", "hidden": 6})
    cost = moe.cost(CostContext(seq_len=10, kv_len=10, d_model=16, n_heads=2))
    assert isinstance(cost, Cost)
    assert cost.params == sum(p.numel() for p in moe.parameters())
    expert = sum(p.numel() for p in moe.experts[0].parameters())
    assert cost.active_params == cost.params - 6 * expert
    router, swiglu, mlp = 2 * 16 * 8, 2 * (16 * 24 + 12 * 16), 2 * (16 * 6 + 6 * 16)
    assert cost.flops == router + 2 * swiglu + mlp
    assert moe.describe() == "moe 8 x swiglu silu, hidden 12, top-2 + shared mlp gelu, hidden 6"


BASE = {"name": "t", "model": {"kind": "decoder", "vocab_size": 23, "max_len": 12, "d_model": 16, "n_heads": 2,
                               "n_layers": 1}}


@pytest.mark.parametrize("ffn, message", [
    ({"n_experts": 4, "top_k": 5}, "model.ffn.top_k: top_k (5) must be at most n_experts (4)"),
    ({"n_experts": 1}, "model.ffn.n_experts: Input should be greater than or equal to 2"),
    ({"n_experts": 4, "expert": "swigul"}, "model.ffn.expert: unknown ffn 'swigul'; did you mean 'swiglu'?"),
    ({"n_experts": 4, "expert": {"type": "mlp", "hidden": 0}},
     "model.ffn.expert: hidden: Input should be greater than 0 (in the mlp block)"),
    ({"n_experts": 4, "expert": {"hidden": 3}}, "model.ffn.expert: expert must be an ffn block"),
    ({"n_experts": 4, "expert": {"type": "moe", "n_experts": 2}},
     "model.ffn.expert: an expert cannot itself be a mixture of experts"),
    ({"n_experts": 4, "shared_gate": True}, "model.ffn.shared_gate: shared_gate needs a shared ffn"),
])
def test_bad_moe_params_are_one_located_line(ffn, message):
    spec = copy.deepcopy(BASE)
    spec["model"]["ffn"] = {"type": "moe", **ffn}
    with pytest.raises(SpecError) as err:
        assemble(spec)
    assert str(err.value).startswith(f"<dict>: {message}")
    assert "\n" not in str(err.value)


def test_the_expert_block_is_stored_with_its_defaults():
    spec = copy.deepcopy(BASE)
    spec["model"]["ffn"] = {"type": "moe", "n_experts": 2, "expert": "geglu"}
    model = assemble(spec)
    assert model.spec.model.ffn.model_dump()["expert"]["type"] == "geglu"
    assert model.spec.model.ffn.model_dump()["expert"]["multiplier"] == pytest.approx(8 / 3)


def test_compiles_without_graph_breaks():
    moe = _moe(n_experts=4, top_k=2)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(moe)(torch.randn(2, 5, 16))
    assert explained.graph_break_count == 0, [str(r.reason) for r in explained.break_reasons]
