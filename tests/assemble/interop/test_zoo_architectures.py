"""The zoo's real architectures: their sizes (on the meta device, no memory) and their families."""

from __future__ import annotations

import pytest

from stackform.assemble import assemble
from stackform.assemble.interop import find_family
from stackform.specs import load_spec

# (zoo name, parameters as stackform inspect prints them, relative tolerance)
SIZES = [
    ("gpt2", 124_439_808, 0), ("gpt2-medium", 354_823_168, 0), ("gpt2-large", 774_030_080, 0),
    ("gpt2-xl", 1_557_611_200, 0), ("bert-base", 109_514_298, 0), ("t5-small", 60_506_624, 0),
    ("llama", 1.24e9, 0.01), ("marian", 74e6, 0.01), ("transformer-big", 213e6, 0.01), ("gpt3", 175e9, 0.01),
    # the smallest public size of each family, counted by hand from its config.json (published: 0.6B, 2.51B, ...)
    ("qwen2-0.5b", 494_032_768, 0), ("qwen3-0.6b", 596_049_920, 0), ("gemma-2b", 2_506_172_416, 0),
    ("olmo-1b", 1_176_764_416, 0), ("opt-125m", 125_239_296, 0),
    ("gpt-neo-125m", 125_198_592, 0),
    ("phi3-mini", 3_821_079_552, 0), ("starcoder2-3b", 3_030_371_328, 0), ("santacoder", 1_124_886_528, 0),
    ("bloom-560m", 559_214_592, 0), ("distilbert-base", 66_985_530, 0), ("mt5-small", 300_176_768, 0),
    # equal to transformers' num_parameters(); BART's and mBART's logits bias is a buffer there (+ vocab_size here)
    ("roberta-base", 124_697_433, 0), ("xlm-roberta-base", 278_295_186, 0), ("camembert-base", 110_655_493, 0),
    ("biogpt", 346_763_264, 0), ("plbart-base", 139_220_736 + 50_005, 0),
    ("data2vec-text-base", 124_697_433, 0), ("blenderbot-400m-distill", 364_802_560 + 8_008, 0),
    ("ctrl", 1_637_964_550, 0), ("openai-gpt", 116_534_784, 0),
    ("mvp", 406_293_504 + 50_267, 0),
    ("bart-base", 139_420_416 + 50_265, 0), ("mbart-large-cc25", 610_851_840 + 250_027, 0),
    # transformers counts Pegasus' two frozen sinusoid tables (2 x 1024 x 1024) as parameters; stackform computes them
    ("pegasus-large", 570_797_056 - 2 * 1024 * 1024 + 96_103, 0),
]


@pytest.mark.parametrize("name,expected,tolerance", SIZES, ids=[s[0] for s in SIZES])
def test_zoo_sizes(name, expected, tolerance):
    model = assemble(name, device="meta")
    assert abs(model.num_parameters() - expected) <= tolerance * expected


FAMILIES = [("gpt2", "gpt2"), ("gpt2-xl", "gpt2"), ("gpt3", "gpt2"), ("bert-base", "bert"), ("llama", "llama"),
            ("t5-small", "t5"), ("marian", "marian"), ("qwen2-0.5b", "qwen2"),
            ("qwen3-0.6b", "qwen3"), ("gemma-2b", "gemma"),
            ("olmo-1b", "olmo"), ("phi3-mini", "phi3"), ("starcoder2-3b", "starcoder2"), ("santacoder", "gpt_bigcode"),
            ("bloom-560m", "bloom"), ("distilbert-base", "distilbert"), ("mt5-small", "mt5"),
            ("opt-125m", "opt"), ("gpt-neo-125m", "gpt_neo"), ("roberta-base", "roberta"),
            ("xlm-roberta-base", "xlm_roberta"), ("bart-base", "bart"), ("mbart-large-cc25", "mbart"),
            ("pegasus-large", "pegasus"), ("camembert-base", "camembert"), ("biogpt", "biogpt"),
            ("plbart-base", "plbart"), ("data2vec-text-base", "data2vec_text"),
            ("blenderbot-400m-distill", "blenderbot"), ("ctrl", "ctrl"), ("openai-gpt", "openai-gpt"), ("mvp", "mvp")]
# a Phi-3 spec is a LLaMA (Mistral) spec, an mT5 spec a T5 one, an XLM-R spec a RoBERTa one: export picks the first unless the other is named
AUTO = {"phi3": "llama", "mt5": "t5", "xlm_roberta": "roberta", "camembert": "roberta", "plbart": "bart", "data2vec_text": "roberta", "mvp": "bart"}


@pytest.mark.parametrize("name,family", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_zoo_specs_export_to_their_family(name, family):
    model = load_spec(name).model
    assert find_family(model).name == AUTO.get(family, family)
    assert find_family(model, family).name == family
