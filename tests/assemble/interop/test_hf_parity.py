"""Parity with Hugging Face: every family, several configs each, logits within 1e-4 in float32
(with padding), greedy generation of 20 tokens equal to ``generate``, and import -> export
giving back the original tensors.
"""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from safetensors.torch import load_file, save_file  # noqa: E402

from hf_cases import BY_ID, CASES, VOCAB, save_hf  # noqa: E402
from stackform.assemble import assemble, export_hf, import_hf, load, load_spec  # noqa: E402
from stackform.assemble.interop import find_family  # noqa: E402
from stackform.assemble.generation import generate, generate_seq2seq  # noqa: E402

IDS = [case.id for case in CASES]
TOL = 1e-4
_cache: dict = {}


@pytest.fixture
def pair(request, tmp_path_factory):
    """(case, Hugging Face model, imported stackform model, folder), built once per case."""
    case = BY_ID[request.param]
    if case.id not in _cache:
        folder = tmp_path_factory.mktemp(case.id)
        hf = save_hf(case, folder)
        _cache[case.id] = (case, hf, import_hf(folder), folder)
    return _cache[case.id]


def _inputs(seed: int = 1):
    """Random ids (no special tokens) and a mask whose second row ends in 3 pad positions."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB - 1, (2, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    tgt = torch.randint(3, VOCAB - 1, (2, 7), generator=g)
    return ids, mask, tgt


def _logits(case, hf, ours, ids, mask, tgt, token_types=None):
    with torch.no_grad():
        if case.kind == "encoder_decoder":
            theirs = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=tgt).logits
            return theirs, ours(ids, tgt, src_mask=mask.bool()), torch.ones_like(tgt, dtype=torch.bool)
        kw = {"token_type_ids": token_types} if token_types is not None else {}
        return hf(input_ids=ids, attention_mask=mask, **kw).logits, ours(ids, mask.bool(), **kw), mask.bool()


@pytest.mark.parametrize("pair", IDS, indirect=True)
def test_logits_match_with_padding(pair):
    case, hf, ours, _ = pair
    ids, mask, tgt = _inputs()
    theirs, mine, real = _logits(case, hf, ours, ids, mask, tgt)
    assert mine.dtype == torch.float32 and mine.shape == theirs.shape
    assert (theirs[real] - mine[real]).abs().max() <= TOL


@pytest.mark.parametrize("pair", [i for i in IDS if i.startswith("bert")], indirect=True)
def test_bert_token_types_match(pair):
    case, hf, ours, _ = pair
    ids, mask, tgt = _inputs(2)
    types = torch.zeros_like(ids)
    types[:, 4:] = ours.spec.model.token_type.params.n_types - 1
    theirs, mine, real = _logits(case, hf, ours, ids, mask, tgt, types)
    assert (theirs[real] - mine[real]).abs().max() <= TOL


def _hf_greedy(hf, **kw):
    config = hf.generation_config
    config.eos_token_id = config.forced_eos_token_id = config.bos_token_id = None
    config.pad_token_id = 0
    return hf.generate(**kw, max_new_tokens=20, do_sample=False, num_beams=1)


@pytest.mark.parametrize("pair", [i for i in IDS if BY_ID[i].kind != "encoder"], indirect=True)
def test_greedy_generation_matches_generate(pair):
    case, hf, ours, _ = pair
    ids, mask, _ = _inputs(3)
    with torch.no_grad():
        if case.kind == "decoder":
            prompt = ids[:, :5]
            theirs = _hf_greedy(hf, input_ids=prompt, attention_mask=torch.ones_like(prompt))
            mine = generate(ours, prompt, 20, temperature=0, eos_id=-1)
        else:
            theirs = _hf_greedy(hf, input_ids=ids, attention_mask=mask)[:, 1:]  # HF starts with the start token
            mine = generate_seq2seq(ours, ids, 20, src_mask=mask.bool(), eos_id=-1)
    assert mine.shape == theirs.shape
    assert torch.equal(mine, theirs)


@pytest.mark.parametrize("pair", IDS, indirect=True)
def test_import_then_export_gives_the_original_tensors(pair, tmp_path):
    case, hf, ours, folder = pair
    assert find_family(ours.spec.model).name == (case.auto_family or case.family)
    export_hf(ours, tmp_path, family=case.family)
    original, exported = load_file(folder / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    # shared but untied Marian, untied BART / mBART: transformers 5 reads each stack's own table, never
    # model.shared.weight
    untied = not ours.spec.model.tie_embeddings
    unused = {"model.shared.weight"} if case.id == "marian-shared-untied" or (
        case.family in ("bart", "mbart", "pegasus", "plbart", "blenderbot", "mvp") and untied) else set()
    if case.family == "pegasus":  # the sinusoid table that transformers saves and recomputes on load
        unused |= {f"model.{side}.embed_positions.weight" for side in ("encoder", "decoder")}
    assert sorted(exported) == sorted(set(original) - unused)
    # untied BERT (RoBERTa, XLM-R) keeps an unused bias next to the decoder's bias; stackform has one bias
    skip = {"bert": {"cls.predictions.bias"}, "roberta": {"lm_head.bias"}, "xlm_roberta": {"lm_head.bias"},
            "camembert": {"lm_head.bias"}, "data2vec_text": {"lm_head.bias"}}.get(
        case.family, set()) if untied else set()
    for name in set(original) - skip - unused:
        assert torch.equal(exported[name], original[name]), name
    auto = {"decoder": transformers.AutoModelForCausalLM, "encoder": transformers.AutoModelForMaskedLM,
            "encoder_decoder": transformers.AutoModelForSeq2SeqLM}[case.kind]
    again = auto.from_pretrained(tmp_path).eval()
    ids, mask, tgt = _inputs(4)
    theirs, mine, real = _logits(case, again, ours, ids, mask, tgt)
    assert (theirs[real] - mine[real]).abs().max() <= TOL


FIRST_OF_EACH_FAMILY = list({case.family: case.id for case in reversed(CASES)}.values())


@pytest.mark.parametrize("pair", FIRST_OF_EACH_FAMILY, indirect=True)
def test_out_folder_holds_a_spec_and_a_checkpoint(pair, tmp_path):
    case, hf, ours, folder = pair
    model = import_hf(folder, tmp_path / "out", name="imported")
    text = (tmp_path / "out" / "spec.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert load_spec(tmp_path / "out" / "spec.yaml").model == model.spec.model
    again = load(tmp_path / "out" / "model.safetensors").eval()
    ids, mask, tgt = _inputs(5)
    args = (ids, tgt) if case.kind == "encoder_decoder" else (ids,)
    with torch.no_grad():
        assert torch.equal(again(*args), model(*args))


@pytest.mark.parametrize("case_id", ["llama-gqa2-untied", "marian-shared-scaled-swish"])
def test_sharded_folders_and_half_precision_weights(case_id, tmp_path):
    case = BY_ID[case_id]
    hf = save_hf(case, tmp_path / "whole")
    hf.to(torch.bfloat16).save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    whole, sharded = import_hf(tmp_path / "whole"), import_hf(tmp_path / "sharded")
    assert next(sharded.parameters()).dtype == torch.bfloat16
    for (name, a), (_, b) in zip(whole.state_dict().items(), sharded.state_dict().items()):
        assert torch.equal(a.to(torch.bfloat16), b), name
    # computed position tables (rope cos / sin, sinusoids) stay float32: run in float32, the bf16 import is
    # the float32 model of the same weights, as transformers' from_pretrained(dtype=float32) is
    exact = import_hf(tmp_path / "sharded", dtype=torch.float32)
    ids, mask, tgt = _inputs(8)
    args = (ids, tgt) if case.kind == "encoder_decoder" else (ids,)
    with torch.no_grad():
        assert torch.equal(sharded.float()(*args), exact(*args))


def test_t5_file_with_its_own_lm_head(tmp_path):
    """T5 v1.1 files carry an untied lm_head.weight (and no rescale): imported untied, exported back."""
    save_hf(BY_ID["t5-gated-3heads-kv12-v1.1"], tmp_path / "hf")
    tensors = load_file(tmp_path / "hf" / "model.safetensors")
    tensors["lm_head.weight"] = torch.randn_like(tensors["shared.weight"])
    save_file(tensors, tmp_path / "hf" / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    config.pop("scale_decoder_outputs")
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config | {"tie_word_embeddings": False}))
    ours = import_hf(tmp_path / "hf")
    assert not ours.spec.model.tie_embeddings and not ours.spec.model.head.params.rescale
    export_hf(ours, tmp_path / "back")
    assert torch.equal(load_file(tmp_path / "back" / "model.safetensors")["lm_head.weight"], tensors["lm_head.weight"])
    ids, mask, tgt = _inputs(6)
    for folder in ("hf", "back"):
        hf = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / folder).eval()
        theirs, mine, real = _logits(BY_ID["t5-relu-rescaled"], hf, ours, ids, mask, tgt)
        assert (theirs - mine).abs().max() <= TOL


def test_shared_untied_marian_exports_every_table(tmp_path):
    """A stackform Marian with shared embeddings and its own head: transformers 5 reads the stacks' tables
    from their own names when the head is untied, so export writes them (else they load at random)."""
    model = {"kind": "encoder_decoder", "vocab_size": VOCAB, "max_len": 32, "d_model": 32, "n_heads": 4,
             "n_layers": 1, "positional": {"type": "sinusoidal", "layout": "halves"}, "residual": "post",
             "ffn": {"type": "mlp", "activation": "relu", "hidden": 48}, "share_embeddings": True,
             "tie_embeddings": False, "head": {"type": "linear", "bias": True}, "pad_id": 0, "bos_id": 0, "eos_id": 1}
    ours = assemble({"name": "m", "model": model, "train": {"data": {"type": "builtin", "name": "copy"}}}, seed=0)
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    ours.eval()
    export_hf(ours, tmp_path)
    hf = transformers.MarianMTModel.from_pretrained(tmp_path).eval()
    ids, mask, tgt = _inputs(7)
    theirs, mine, real = _logits(BY_ID["marian-shared-untied"], hf, ours, ids, mask, tgt)
    assert (theirs - mine).abs().max() <= TOL


@pytest.mark.parametrize("pair", [i for i in IDS if BY_ID[i].family in ("roberta", "xlm_roberta", "camembert", "data2vec_text")],
                         indirect=True)
def test_roberta_positions_with_pad_tokens_at_the_end(pair):
    """Transformers numbers RoBERTa's positions over non-pad ids; a right-padded row (pad ids at its end, as a
    tokenizer pads) reads the same rows as stackform's offset positions at every real token."""
    case, hf, ours, _ = pair
    pad = ours.spec.model.pad_id
    assert ours.spec.model.positional.params.offset == pad + 1
    ids, mask, tgt = _inputs(10)
    ids[ids == pad] = pad + 1  # no pad id inside the rows
    ids[1, 6:] = pad
    theirs, mine, real = _logits(case, hf, ours, ids, mask, tgt)
    assert (theirs[real] - mine[real]).abs().max() <= TOL
    with torch.no_grad():  # without a mask stackform hides the pad ids itself (transformers would attend to them)
        assert torch.equal(ours(ids)[real], mine[real])
