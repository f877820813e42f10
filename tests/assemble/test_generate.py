"""generate / generate_seq2seq: KV-cache decoding equals uncached decoding, sampling filters,
eos and max_len handling, beam search, and clear errors."""

from __future__ import annotations

import copy

import pytest
import torch

from stackform import registry
from stackform.assemble import GenerationError, assemble, generate, generate_seq2seq
from stackform.blocks import Positional
from stackform.assemble.generation import filter_top_k, filter_top_p, length_penalty, next_token

VOCAB, MAX_LEN, PAD, BOS, EOS = 23, 16, 0, 1, 2
ATTENTIONS = {
    "mha": {"attention": {"type": "mha"}},
    "gqa": {"attention": {"type": "gqa", "n_kv_heads": 2}},
    "mqa": {"attention": {"type": "mqa"}},
    "window": {"attention": {"type": "mha", "window": 3}},
}


def tiny(kind: str = "decoder", **model) -> dict:
    """A tiny spec; init_std 0.5 makes a random model's greedy tokens vary with position."""
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


def ids(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, VOCAB, (b, t), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def decoder():
    return assemble(tiny(), seed=0)


@pytest.fixture(scope="module")
def seq2seq():
    return assemble(tiny("encoder_decoder"), seed=0)


# ---- the KV cache changes nothing -------------------------------------------------------------

@pytest.mark.parametrize("attention", sorted(ATTENTIONS))
@pytest.mark.parametrize("positional", registry.names("positional"))
def test_decoder_cached_equals_uncached(positional, attention):
    model = build(tiny(positional=positional, **ATTENTIONS[attention]))
    prompt = ids(2, 3)
    cached = generate(model, prompt, 10, temperature=0, eos_id=-1)
    assert cached.shape == (2, 13)
    assert torch.equal(cached, generate(model, prompt, 10, temperature=0, eos_id=-1, use_cache=False))


@pytest.mark.parametrize("attention", sorted(ATTENTIONS))
@pytest.mark.parametrize("positional", registry.names("positional"))
def test_seq2seq_cached_equals_uncached(positional, attention):
    model = build(tiny("encoder_decoder", positional=positional, **ATTENTIONS[attention]))
    src = ids(2, 5)
    src[1, 3:] = PAD  # a padded source row
    cached = generate_seq2seq(model, src, 10, eos_id=-1)
    assert cached.shape == (2, 10)
    assert torch.equal(cached, generate_seq2seq(model, src, 10, eos_id=-1, use_cache=False))
    beams = generate_seq2seq(model, src, 6, beam=3, eos_id=-1)
    assert torch.equal(beams, generate_seq2seq(model, src, 6, beam=3, eos_id=-1, use_cache=False))


def _decoder_masks() -> list[tuple[str, list]]:
    """Every registered mask as tests/variants.py puts it in a decoder (with causal where it needs it)."""
    from variants import mask_variants

    return [(e.name, masks) for e in registry.list_blocks() if e.kind == "mask"
            for kind, masks in mask_variants(e) if kind == "decoder"]


DECODER_MASKS = _decoder_masks()


@pytest.mark.parametrize("masks", [m for _, m in DECODER_MASKS], ids=[i for i, _ in DECODER_MASKS])
def test_decoder_masks_cached_equals_uncached_or_refused(masks):
    """Every registered mask: the cache gives the same tokens, or (a prompt shorter than a prefix_lm's
    prefix) generation is refused with one line, with and without the cache; a long prompt always works."""
    model = build(tiny(mask=masks))
    for length in (1, 2, 6):
        prompt = ids(2, length, seed=length)
        runs = []
        for use_cache in (True, False):
            try:
                runs.append(generate(model, prompt, 8, temperature=0, eos_id=-1, use_cache=use_cache))
            except GenerationError as exc:
                runs.append(str(exc))
        assert runs[0] == runs[1] if isinstance(runs[0], str) else torch.equal(*runs), (length, runs)
        if isinstance(runs[0], str):
            assert length < 6 and runs[0].startswith("generate: the prefix_lm mask's prefix_len (3) is longer than "
                                                     f"the {length} token(s) decoding starts from")


def test_seq2seq_decoder_prefix_longer_than_bos_is_refused():
    model = assemble(tiny("encoder_decoder", decoder={"mask": [{"type": "prefix_lm", "prefix_len": 2}]}), seed=0)
    for beam in (1, 2):
        with pytest.raises(GenerationError, match=r"^generate_seq2seq: the prefix_lm mask's prefix_len \(2\) is "
                                                  r"longer than the 1 token\(s\) decoding starts from"):
            generate_seq2seq(model, ids(1, 3), 4, beam=beam)


@pytest.mark.parametrize("masks", [m for _, m in DECODER_MASKS], ids=[i for i, _ in DECODER_MASKS])
def test_seq2seq_decoder_masks_cached_equals_uncached(masks):
    """The decoder side's masks (padding included: its cached key padding follows the beams)."""
    masks = [m if isinstance(m, str) else {**m, **({"prefix_len": 1} if "prefix_len" in m else {})}
             for m in masks]  # seq2seq's prompt is bos alone: a prefix longer than it cannot be cached
    model = build(tiny("encoder_decoder", decoder={"mask": masks}))
    src = ids(2, 5)
    src[1, 3:] = PAD
    free = generate_seq2seq(model, src, 8, beam=3, eos_id=-1)
    for beam in (1, 3):
        for eos in (-1, int(free[0, 2])):
            assert torch.equal(generate_seq2seq(model, src, 8, beam=beam, eos_id=eos),
                               generate_seq2seq(model, src, 8, beam=beam, eos_id=eos, use_cache=False))


def test_sliding_window_mask_cached_equals_uncached():
    model = assemble(tiny(mask=["causal", {"type": "sliding_window", "window": 3}]), seed=0)
    prompt = ids(2, 4)
    assert torch.equal(generate(model, prompt, 10, temperature=0, eos_id=-1),
                       generate(model, prompt, 10, temperature=0, eos_id=-1, use_cache=False))


def test_sampling_cached_equals_uncached(decoder):
    prompt = ids(3, 2)
    runs = [generate(decoder, prompt, 10, top_k=5, top_p=0.9, eos_id=-1, use_cache=cached,
                     generator=torch.Generator().manual_seed(7)) for cached in (True, False)]
    assert torch.equal(*runs)


def test_cache_keeps_the_key_padding_of_earlier_steps():
    """A decoder that masks pad keys: a pad in the prompt stays hidden from every later step."""
    model = assemble(tiny(mask=["causal", "padding"]), seed=0).eval()
    seq = ids(2, 8)
    seq[:, 2] = PAD
    with torch.no_grad():
        full = model(seq)
        cache = model.new_cache()
        model(seq[:, :6], cache=cache)
        steps = torch.cat([model(seq[:, i : i + 1], cache=cache).logits for i in range(6, 8)], dim=1)
    torch.testing.assert_close(steps, full[:, 6:], rtol=1e-4, atol=1e-5)


def test_decoder_runs_the_prompt_once_then_one_token_per_step(decoder):
    fed = []
    hook = decoder.embed.register_forward_hook(lambda mod, args, out: fed.append(args[0].shape[1]))
    try:
        generate(decoder, ids(2, 5), 6, temperature=0, eos_id=-1)
    finally:
        hook.remove()
    assert fed == [5, 1, 1, 1, 1, 1]  # the last token is never fed back


def _count_calls(modules):
    calls = []
    hooks = [m.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[0])) for m in modules]
    return calls, hooks


@pytest.mark.parametrize("beam", [1, 3])
def test_source_encoded_and_cross_keys_values_computed_once(seq2seq, beam):
    layers = seq2seq.decoder.layers
    calls, hooks = _count_calls([layer.cross_attn.kv for layer in layers] + [seq2seq.encoder])
    try:
        generate_seq2seq(seq2seq, ids(2, 5), 6, beam=beam, eos_id=-1)
        once = list(calls)
        calls.clear()
        generate_seq2seq(seq2seq, ids(2, 5), 6, beam=beam, eos_id=-1, use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    assert once == [2] * (len(layers) + 1)  # encoder once, each cross-attention once, for the 2 sources
    assert len(calls) == 1 + 6 * len(layers)  # without the cache: every step recomputes them


# ---- choosing tokens --------------------------------------------------------------------------

def test_temperature_zero_is_argmax(decoder):
    prompt = ids(2, 3)
    out = generate(decoder, prompt, 8, temperature=0, eos_id=-1)
    seq = prompt
    with torch.no_grad():
        for _ in range(8):
            seq = torch.cat((seq, decoder(seq)[:, -1].argmax(-1, keepdim=True)), dim=1)
    assert torch.equal(out, seq)


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.tensor([[0.1, 3.0, 2.0, -1.0, 2.5], [5.0, 5.0, 1.0, 0.0, -2.0]])
    kept = filter_top_k(logits, 2).isfinite()
    assert kept.tolist() == [[False, True, False, False, True], [True, True, False, False, False]]
    assert torch.equal(filter_top_k(logits, 9), logits)


def test_top_k_never_emits_a_token_outside_the_k_most_likely(decoder):
    prompt = ids(4, 2)
    out = generate(decoder, prompt, 12, top_k=3, temperature=2.0, eos_id=-1,
                   generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = decoder(out[:, :-1])[:, 1:]  # [b, 12, V]: the logits each new token was drawn from
    top3 = logits.topk(3, dim=-1).indices
    assert (top3 == out[:, 2:, None]).any(-1).all()
    assert not (top3[..., :1] == out[:, 2:, None]).all()  # it samples, not argmax


@pytest.mark.parametrize("p, nucleus", [(0.5, {0}), (0.8, {0, 1}), (0.81, {0, 1, 2}), (0.96, {0, 1, 2, 3}),
                                        (1.0, {0, 1, 2, 3})])
def test_top_p_keeps_the_smallest_nucleus(p, nucleus):
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    order = torch.tensor([2, 0, 3, 1])  # shuffled vocabulary positions
    logits = torch.empty(4).index_copy_(0, order, probs.log())[None]  # token order[i] has probs[i]
    kept = filter_top_p(logits, p)[0].isfinite().nonzero().flatten().tolist()
    assert set(kept) == {int(order[i]) for i in nucleus}


def test_top_p_samples_only_from_the_nucleus():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, -3.0]]).expand(2000, 5)
    drawn = next_token(logits, 1.0, top_p=0.8, generator=torch.Generator().manual_seed(0))
    probs = logits[0].softmax(-1)
    assert probs[0] < 0.8 <= probs[0] + probs[1]  # so the nucleus is {0, 1}
    assert set(drawn.tolist()) == {0, 1}


def test_sampling_is_reproducible_with_a_generator(decoder):
    runs = [generate(decoder, ids(2, 2), 10, eos_id=-1, generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(*runs)


# ---- eos, padding, max_len --------------------------------------------------------------------

def _expected_after_eos(free: torch.Tensor, start: int, eos: int) -> torch.Tensor:
    """Rows of ``free`` (generated without eos) cut after their first eos, pad after, trimmed."""
    out = free.clone()
    ends = []
    for row in out:
        hits = (row[start:] == eos).nonzero()
        end = start + int(hits[0]) + 1 if len(hits) else len(row)
        row[end:] = PAD
        ends.append(end)
    return out[:, : max(ends)]


def test_decoder_pads_after_eos_and_stops_when_all_rows_are_done(decoder):
    prompt = ids(3, 2, seed=1)
    free = generate(decoder, prompt, 12, temperature=0, eos_id=-1)
    eos = int(free[0, 5])  # a token row 0 emits (maybe others later, or never)
    out = generate(decoder, prompt, 12, temperature=0, eos_id=eos)
    assert torch.equal(out, _expected_after_eos(free, 2, eos))
    assert out.shape[1] < free.shape[1] or (free[:, 2:] == eos).any(-1).all()


def test_seq2seq_pads_after_eos(seq2seq):
    src = ids(3, 5, seed=1)
    free = generate_seq2seq(seq2seq, src, 12, eos_id=-1)
    eos = int(free[1, 3])
    assert torch.equal(generate_seq2seq(seq2seq, src, 12, eos_id=eos), _expected_after_eos(free, 0, eos))


def test_default_eos_is_the_specs(decoder):
    free = generate(decoder, ids(1, 2), 12, temperature=0, eos_id=-1)
    eos = int(free[0, 4])
    model = assemble(tiny(eos_id=eos), seed=0)  # the same weights, another eos_id
    assert torch.equal(generate(model, ids(1, 2), 12, temperature=0), _expected_after_eos(free, 2, eos))


def test_never_past_max_len(decoder, seq2seq):
    assert generate(decoder, ids(2, MAX_LEN - 3), 50, temperature=0, eos_id=-1).shape == (2, MAX_LEN)
    assert torch.equal(generate(decoder, ids(2, MAX_LEN), 5), ids(2, MAX_LEN))
    assert generate_seq2seq(seq2seq, ids(2, MAX_LEN), 50, eos_id=-1).shape == (2, MAX_LEN - 1)  # bos + 15
    assert generate_seq2seq(seq2seq, ids(2, 4), 50, beam=2, eos_id=-1).shape == (2, MAX_LEN - 1)
    with pytest.raises(GenerationError, match=f"prompt_ids has {MAX_LEN + 1} tokens, more than max_len {MAX_LEN}"):
        generate(decoder, ids(1, MAX_LEN + 1), 5)
    with pytest.raises(GenerationError, match=f"src_ids has {MAX_LEN + 1} tokens, more than max_len"):
        generate_seq2seq(seq2seq, ids(1, MAX_LEN + 1), 5)


# ---- beam search ------------------------------------------------------------------------------

def gnmt_score(model, src: torch.Tensor, out: torch.Tensor, eos: int, alpha: float) -> torch.Tensor:
    """log P(out | src) / ((5 + len) / 6) ** alpha by teacher forcing; len counts up to the first eos."""
    tgt = torch.cat((torch.full((out.shape[0], 1), BOS), out), dim=1)
    with torch.no_grad():
        logp = model(src, tgt[:, :-1]).log_softmax(-1).gather(-1, out[..., None]).squeeze(-1)  # [b, n]
    scores = []
    for row, lp in zip(out, logp):
        hits = (row == eos).nonzero()
        n = int(hits[0]) + 1 if len(hits) else len(row)
        scores.append(lp[:n].sum() / length_penalty(n, alpha))
    return torch.stack(scores)


def test_beam_one_is_greedy(seq2seq):
    src = ids(4, 5, seed=2)
    free = generate_seq2seq(seq2seq, src, 10, eos_id=-1)
    for eos in (-1, int(free[0, 2]), int(free[2, 6])):
        assert torch.equal(generate_seq2seq(seq2seq, src, 10, beam=1, eos_id=eos),
                           generate_seq2seq(seq2seq, src, 10, eos_id=eos))


def test_beam_scores_at_least_as_well_as_greedy():
    differs = False
    for seed in range(4):
        model = assemble(tiny("encoder_decoder"), seed=seed)
        src = ids(4, 5, seed=seed)
        free = generate_seq2seq(model, src, 8, eos_id=-1)
        eos = int(free[1, 3])  # an eos the model emits, so hypotheses finish at different lengths
        greedy = generate_seq2seq(model, src, 8, eos_id=eos)
        beam = generate_seq2seq(model, src, 8, beam=4, length_penalty=0.6, eos_id=eos)
        assert (greedy == eos).any()
        assert (gnmt_score(model, src, beam, eos, 0.6) >= gnmt_score(model, src, greedy, eos, 0.6) - 1e-4).all()
        differs |= beam.shape != greedy.shape or not torch.equal(beam, greedy)
    assert differs  # beam search found something else than greedy somewhere


def test_length_penalty_is_gnmt():
    assert length_penalty(1, 0.6) == 1.0
    assert length_penalty(7, 0.6) == pytest.approx(2 ** 0.6)
    assert length_penalty(10, 0.0) == 1.0


# ---- modes and errors -------------------------------------------------------------------------

def test_training_mode_and_checks_are_restored_and_dropout_is_off():
    model = assemble(tiny(dropout=0.5), seed=0)
    assert model.training
    runs = [generate(model, ids(2, 3), 8, temperature=0, eos_id=-1) for _ in range(2)]
    assert torch.equal(*runs)
    assert model.training and model.check_inputs and "check_inputs" not in model.__dict__
    model(runs[0]).sum().backward()  # the output is an ordinary tensor, usable in training


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=-1.0), "temperature must be a finite number >= 0"),
    (dict(temperature=float("inf")), "temperature must be a finite number >= 0"),
    (dict(top_k=0), "top_k must be an integer >= 1"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
    (dict(top_p=True), r"top_p must be in \(0, 1\] or None, got True"),
    (dict(generator=7), "generator must be a torch.Generator or None, got int"),
    (dict(eos_id=VOCAB), "eos_id must be a token id below vocab_size"),
])
def test_bad_sampling_arguments(decoder, kwargs, message):
    with pytest.raises(GenerationError, match=f"^generate: {message}"):
        generate(decoder, ids(1, 2), 3, **kwargs)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_non_finite_weights_are_one_clear_error(temperature):
    model = assemble(tiny(), seed=0)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    with pytest.raises(GenerationError, match=r"^generation: the model's next-token probabilities in row 0 are NaN"):
        generate(model, ids(2, 3), 3, temperature=temperature)


@pytest.mark.parametrize("prompt, message", [
    (torch.zeros(2, 3), "integer token ids, got torch.float32"),
    (torch.zeros(3, dtype=torch.long), r"shape \[batch, seq\], got \(3,\)"),
    (torch.zeros(1, 0, dtype=torch.long), "is empty"),
    (torch.tensor([[3, VOCAB]]), f"token id {VOCAB}, outside the vocabulary"),
    (torch.tensor([[-1, 3]]), "token id -1, outside the vocabulary"),
])
def test_bad_prompts(decoder, prompt, message):
    with pytest.raises(GenerationError, match=message):
        generate(decoder, prompt, 3)


def test_bad_seq2seq_arguments(seq2seq, decoder):
    with pytest.raises(GenerationError, match="beam search .* is deterministic; use temperature 0"):
        generate_seq2seq(seq2seq, ids(1, 2), 3, beam=2, temperature=1.0)
    with pytest.raises(GenerationError, match="beam must be an integer >= 1"):
        generate_seq2seq(seq2seq, ids(1, 2), 3, beam=0)
    with pytest.raises(GenerationError, match=r"^generate_seq2seq: src_mask: shape \(1, 3\) does not match the ids"):
        generate_seq2seq(seq2seq, ids(1, 2), 3, src_mask=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(GenerationError, match="decoder-only model; use generate"):
        generate_seq2seq(decoder, ids(1, 2), 3)
    with pytest.raises(GenerationError, match="encoder-decoder model; use generate_seq2seq"):
        generate(seq2seq, ids(1, 2), 3)
    spec = tiny("encoder_decoder")
    del spec["model"]["bos_id"]
    with pytest.raises(GenerationError, match="no bos_id"):
        generate_seq2seq(assemble(spec, seed=0), ids(1, 2), 3)


def test_encoder_only_cannot_generate():
    spec = copy.deepcopy(tiny("encoder"))
    model = assemble(spec, seed=0)
    for call in (generate, generate_seq2seq):
        with pytest.raises(GenerationError, match="an encoder-only model cannot generate .*needs a decoder"):
            call(model, ids(1, 2), 3)


def test_buffered_cache_matches_the_plain_cache():
    from stackform.assemble.generation.cache import BufferedLayerCache
    from stackform.blocks import LayerCache

    plain, buffered = LayerCache(), BufferedLayerCache(capacity=3)
    steps = [torch.randn(2, 2, t, 4) for t in (2, 1, 3, 1)]  # goes past the capacity: the buffer grows
    for i, k in enumerate(steps):
        expected = plain.append(k, -k)
        got = buffered.append(k, -k)
        assert all(torch.equal(a, b) for a, b in zip(expected, got))
        if i == 1:
            index = torch.tensor([1, 1])
            plain.reorder(index)
            buffered.reorder(index)
    assert buffered.length == 7 and torch.equal(buffered.k, plain.k) and torch.equal(buffered.v, plain.v)
