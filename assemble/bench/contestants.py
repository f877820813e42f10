"""Training steps for each contestant: stackform, the hand-written reference, and peers."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from stackform.assemble import assemble
from stackform.assemble.train.loss import loss_function
from stackform.assemble.train.optim import build_optimizer
from stackform.specs import Spec

from .harness import Contestant
from .reference import ReferenceGPT


def _optimizer(model: torch.nn.Module, device: torch.device, spec: Spec) -> torch.optim.Optimizer:
    """What a person writes: one AdamW over all parameters (the fused kernel on CUDA)."""
    o = spec.train.optimizer
    return torch.optim.AdamW(model.parameters(), lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay,
                             fused=device.type == "cuda")


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def _make_step(loss_fn: Callable[[], torch.Tensor], model: torch.nn.Module, device: torch.device,
               bf16: bool, opt: torch.optim.Optimizer) -> Callable[[], None]:

    def step() -> None:
        with _autocast(device, bf16):
            loss = loss_fn()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _compile(model: torch.nn.Module, mode: str | None) -> torch.nn.Module:
    return torch.compile(model, mode=mode) if mode else model


def stackform_step(spec: Spec, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device, bf16: bool,
                   compile_mode: str | None) -> Contestant:
    """stackform's model with the loss that ``stackform train`` uses (the head fused with the loss;
    compiled, model and loss are one graph, as in training)."""
    model = assemble(spec, device=device, seed=0)
    model.check_inputs = False  # the trainer validates data once; no per-step host sync
    model.train()
    idx, targets = batch
    loss_fn = loss_function(model, model, spec, compile=compile_mode is not None, mode=compile_mode)
    data = {"input_ids": idx, "labels": targets}

    def loss() -> torch.Tensor:
        if compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        total, n = loss_fn(data)
        return total / n

    opt = build_optimizer(model, spec.train.optimizer, device)  # what `stackform train` uses
    return Contestant("stackform", _make_step(loss, model, device, bf16, opt), model.num_parameters(), idx.numel())


def stackform_plain_ce_step(spec: Spec, batch, device: torch.device, bf16: bool,
                            compile_mode: str | None) -> Contestant:
    """Diagnostic: stackform's model with the reference's loss (full logits, inside the compiled graph)."""
    model = assemble(spec, device=device, seed=0)
    model.check_inputs = False
    model.train()
    idx, targets = batch

    def loss_fn(idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = model(idx)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.view(-1))

    run = torch.compile(loss_fn, mode=compile_mode) if compile_mode else loss_fn
    opt = build_optimizer(model, spec.train.optimizer, device)
    return Contestant("sf+plain-ce", _make_step(lambda: run(idx, targets), model, device, bf16, opt),
                      model.num_parameters(), idx.numel())


def reference_step(spec: Spec, batch, device: torch.device, bf16: bool, compile_mode: str | None) -> Contestant:
    torch.manual_seed(0)
    model = ReferenceGPT(spec.model).to(device).train()
    run = _compile(model, compile_mode)
    idx, targets = batch
    params = sum(p.numel() for p in model.parameters())
    step = _make_step(lambda: run(idx, targets), model, device, bf16, _optimizer(model, device, spec))
    return Contestant("hand-written", step, params, idx.numel())


def peer_steps(spec: Spec, batch, device: torch.device, bf16: bool, compile_mode: str | None,
               log: Callable[[str], None] = print) -> list[Contestant]:
    """x-transformers and Hugging Face GPT-2 of the same shape, when installed (extra ``bench``)."""
    out = []
    m = spec.model
    idx, targets = batch
    try:
        from x_transformers import Decoder, TransformerWrapper

        model = TransformerWrapper(
            num_tokens=m.vocab_size, max_seq_len=m.max_len, tie_embedding=m.tie_embeddings,
            attn_layers=Decoder(dim=m.d_model, depth=m.n_layers, heads=m.n_heads, attn_flash=True,
                                ff_mult=(m.ffn.params.hidden or 4 * m.d_model) / m.d_model),
        ).to(device).train()
        run = _compile(model, compile_mode)

        def xt_loss(run=run) -> torch.Tensor:
            logits = run(idx)
            return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.view(-1))

        out.append(Contestant("x-transformers", _make_step(xt_loss, model, device, bf16, _optimizer(model, device, spec)),
                              sum(p.numel() for p in model.parameters()), idx.numel()))
    except ImportError:
        log("  (x-transformers not installed: pip install 'stackform[bench]')")
    try:
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(vocab_size=m.vocab_size, n_positions=m.max_len, n_embd=m.d_model, n_layer=m.n_layers,
                            n_head=m.n_heads, n_inner=m.ffn.params.hidden, resid_pdrop=0.0, embd_pdrop=0.0,
                            attn_pdrop=0.0, tie_word_embeddings=m.tie_embeddings, activation_function="gelu_new")
        config._attn_implementation = "sdpa"
        model = GPT2LMHeadModel(config).to(device).train()
        run = _compile(model, compile_mode)

        def hf_loss(run=run) -> torch.Tensor:
            logits = run(input_ids=idx).logits
            return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.view(-1))

        out.append(Contestant("hf-gpt2", _make_step(hf_loss, model, device, bf16, _optimizer(model, device, spec)),
                              sum(p.numel() for p in model.parameters()), idx.numel()))
    except ImportError:
        log("  (transformers not installed: pip install 'stackform[bench]')")
    return out
