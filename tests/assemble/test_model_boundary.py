"""The model boundary checks the device, dtype and shape of every argument, KV caches included:
one ModelInputError naming the argument, what was expected and what was given."""

from __future__ import annotations

import pytest
import torch

from stackform.assemble import Cache, ModelInputError, assemble, generate
from stackform.blocks import LayerCache

VOCAB, MAX_LEN = 23, 16


def tiny(kind: str, **model) -> dict:
    spec = {"name": f"tiny-{kind}",
            "model": {"kind": kind, "vocab_size": VOCAB, "max_len": MAX_LEN, "d_model": 32, "n_heads": 4,
                      "n_layers": 2, "pad_id": 0, "bos_id": 1, "eos_id": 2, **model}}
    if kind == "encoder_decoder":
        spec["train"] = {"data": {"type": "builtin", "name": "copy"}}
    return spec


@pytest.fixture(scope="module")
def models():
    return {
        "decoder": assemble(tiny("decoder", mask=[{"type": "prefix_lm"}]), seed=0).eval(),
        "encoder": assemble(tiny("encoder", token_type={"type": "learned"}), seed=0).eval(),
        "encoder_decoder": assemble(tiny("encoder_decoder"), seed=0).eval(),
        "deeper": assemble(tiny("decoder", n_layers=3), seed=0).eval(),
    }


IDS = torch.randint(3, VOCAB, (2, 6), generator=torch.Generator().manual_seed(0))
ONES = torch.ones(2, 6, dtype=torch.bool)


def _arguments(kind: str, model) -> dict:
    """Every tensor argument of a call of ``kind``: name -> (positional args, keyword args)."""
    if kind == "decoder":
        return {"input_ids": IDS, "attention_mask": ONES, "prefix_len": torch.tensor([2, 3])}
    if kind == "encoder":
        return {"input_ids": IDS, "attention_mask": ONES, "token_type_ids": torch.zeros_like(IDS)}
    with torch.no_grad():
        states, padding = model.encode(IDS, ONES)
    return {"src_ids": IDS, "tgt_ids": IDS[:, :3], "src_mask": ONES, "tgt_mask": ONES[:, :3],
            "memory": (states, padding)}


def _call(model, kind: str, args: dict):
    with torch.no_grad():
        if kind != "encoder_decoder":
            return model(**args)
        return model(args.pop("src_ids"), args.pop("tgt_ids"), **args)


def _variants(name: str, value) -> dict:
    """Wrong versions of one argument: on another device, of a wrong dtype, of a wrong shape."""
    if name == "memory":
        states, padding = value
        return {"device": (states.to("meta"), padding), "dtype": (states.long(), padding),
                "shape": (states[..., :-1], padding), "padding-dtype": (states, padding.float()),
                "padding-shape": (states, padding[:, :-1]), "padding-device": (states, padding.to("meta")),
                "type": states}
    return {"device": value.to("meta"), "dtype": value.to(torch.complex64) if "mask" in name else value.float(),
            "shape": value[None], "type": value.tolist()}


ARGUMENTS = {"decoder": ["input_ids", "attention_mask", "prefix_len"],
             "encoder": ["input_ids", "attention_mask", "token_type_ids"],
             "encoder_decoder": ["src_ids", "tgt_ids", "src_mask", "tgt_mask", "memory"]}
WAYS = ["device", "dtype", "shape", "type"]
MEMORY_WAYS = WAYS + ["padding-dtype", "padding-shape", "padding-device"]
CASES = [(kind, name, how) for kind, names in ARGUMENTS.items() for name in names
         for how in (MEMORY_WAYS if name == "memory" else WAYS)]


@pytest.mark.parametrize("kind, name, how", CASES, ids=[f"{k}-{n}-{h}" for k, n, h in CASES])
def test_every_argument_is_checked(models, kind, name, how):
    """Each argument, made wrong in one way while the others stay right, is one line naming it."""
    model = models[kind]
    args = _arguments(kind, model)
    assert sorted(args) == sorted(ARGUMENTS[kind])
    if name != "memory":
        args.pop("memory", None)  # a given memory stands for the source (src_ids and src_mask are not read)
    _call(model, kind, dict(args))  # the right call works
    args[name] = _variants(name, args[name])[how]
    with pytest.raises(ModelInputError) as info:
        _call(model, kind, args)
    message = str(info.value)
    named = "memory_padding" if how.startswith("padding") else name
    assert message.startswith(f"{named}: ") and "\n" not in message, message


def test_device_message_names_both_devices(models):
    with pytest.raises(ModelInputError, match=r"^input_ids: is on meta, the model's weights on cpu; "
                                              r"move it with \.to\('cpu'\)$"):
        models["decoder"](IDS.to("meta"))
    with pytest.raises(ModelInputError, match=r"^attention_mask: is on meta, the ids on cpu"):
        models["encoder"](IDS, ONES.to("meta"))


@pytest.mark.parametrize("prefix_len, message", [
    (torch.tensor([[1, 2]]), r"prefix_len: expected an int or an integer tensor of shape \(2,\) \(one length per "
                             r"row\), got \(1, 2\)"),
    (torch.tensor([1, 2, 3]), r"prefix_len: expected an int or an integer tensor of shape \(2,\) .*, got \(3,\)"),
    ([1, 2], "prefix_len: expected an int or an integer tensor .*, got list"),
    (torch.tensor([1.0, 2.0]), "prefix_len: expected integer lengths, got torch.float32"),
    (torch.tensor([True, False]), "prefix_len: expected integer lengths, got torch.bool"),
    (-1, "prefix_len: expected a length >= 0, got -1"),
    (torch.tensor([1, -2]), "prefix_len: expected lengths >= 0, got -2"),
])
def test_bad_prefix_len(models, prefix_len, message):
    with pytest.raises(ModelInputError, match=f"^{message}"):
        models["decoder"](IDS[:, :4], prefix_len=prefix_len)


def test_prefix_len_forms_agree(models):
    model = models["decoder"]
    with torch.no_grad():
        each = model(IDS, prefix_len=torch.tensor([3, 3]))
        assert torch.equal(model(IDS, prefix_len=3), each)
        assert torch.equal(model(IDS, prefix_len=torch.tensor(3)), each)
        assert torch.equal(model(IDS, prefix_len=torch.tensor([3, 3], dtype=torch.int32)), each)
        assert not torch.equal(model(IDS, prefix_len=1), each)  # it is read


# ---- KV caches --------------------------------------------------------------------------------

def _used_cache(model, batch: int = 2, length: int = 4) -> Cache:
    cache = model.new_cache()
    with torch.no_grad():
        model(IDS[:1].expand(batch, 6)[:, :length], cache=cache)
    return cache


def _layers_cache(n: int) -> Cache:
    return Cache([(LayerCache(), LayerCache()) for _ in range(n)])


def _midway(model, other=None) -> Cache:
    cache = _used_cache(model)
    cache.offset -= 1  # as if a call had failed after some layers appended
    return cache


def _meta(model, other=None) -> Cache:
    cache = _used_cache(model)
    for self_cache, _ in cache.layers:
        self_cache.k, self_cache.v = self_cache.k.to("meta"), self_cache.v.to("meta")
    return cache


CACHE_CASES = {
    "not-a-cache": (lambda m, o: [], "cache: expected a Cache from model.new_cache(), got list"),
    "other-batch": (lambda m, o: _used_cache(m, batch=3),
                    "cache: holds 3 rows, the ids have 2 (a cache serves one batch); make a new one with "
                    "model.new_cache()"),
    "other-model": (lambda m, o: o.new_cache(), "cache: it belongs to another model; make a new one"),
    "other-model-after-use": (lambda m, o: _used_cache(o), "cache: it belongs to another model"),
    "layer-count": (lambda m, o: _layers_cache(3), "cache: holds 3 layers, this model's decoder has 2"),
    "midway": (_midway, "cache: layer 0 holds 4 self-attention positions, its offset says 3"),
    "device": (_meta, "cache: is on meta, the ids on cpu"),
    "past-max-len": (lambda m, o: _full(m),
                     "input_ids: sequence length 17 (14 cached + 3 new) exceeds max_len 16"),
}


def _full(model) -> Cache:
    cache = model.new_cache()
    with torch.no_grad():
        model(torch.zeros(2, 14, dtype=torch.long), cache=cache)
    return cache


@pytest.mark.parametrize("case", CACHE_CASES)
def test_bad_cache_is_one_line(models, case):
    make, message = CACHE_CASES[case]
    model = models["decoder"]
    cache = make(model, models["deeper"] if case != "other-model-after-use" else
                 assemble(tiny("decoder", mask=[{"type": "prefix_lm"}]), seed=0).eval())
    with pytest.raises(ModelInputError) as info:
        model(IDS[:, :3], cache=cache)
    assert str(info.value).startswith(message) and "\n" not in str(info.value), str(info.value)


def test_a_cache_binds_to_its_first_model(models):
    """A cache made without a model (as generation makes them) belongs to the model that fills it first."""
    model, other = models["decoder"], assemble(tiny("decoder", mask=[{"type": "prefix_lm"}]), seed=1).eval()
    cache = _layers_cache(2)
    with torch.no_grad():
        model(IDS[:, :2], cache=cache)
        model(IDS[:, 2:3], cache=cache)  # the same model goes on
    with pytest.raises(ModelInputError, match="^cache: it belongs to another model"):
        other(IDS[:, 3:4], cache=cache)


def test_seq2seq_cache_of_another_source_or_batch(models):
    model = models["encoder_decoder"]
    cache = model.new_cache()
    with torch.no_grad():
        memory = model.encode(IDS)
        model(IDS, IDS[:, :2], cache=cache, memory=memory)
        with pytest.raises(ModelInputError, match="^cache: layer 0 holds 6 cross-attention positions, the source "
                                                  "has 4"):
            model(IDS[:, :4], IDS[:, 2:3], cache=cache)
        with pytest.raises(ModelInputError, match="^cache: holds 2 rows, the ids have 1"):
            model(IDS[:1], IDS[:1, 2:3], cache=cache)


def test_generation_still_works_after_the_checks(models):
    out = generate(models["decoder"], IDS, 4, temperature=0, eos_id=-1)
    assert out.shape == (2, 10)
