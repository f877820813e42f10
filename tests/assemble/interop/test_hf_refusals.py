"""Config options an importer does not support are refused in one line that names the key, its value
and what the family supports (never a silent approximation); legacy spellings are read as transformers
reads them. One saved folder per family, edited."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from hf_cases import BY_ID, save_hf  # noqa: E402
from stackform.assemble import import_hf  # noqa: E402
from stackform.assemble.interop import InteropError  # noqa: E402

# (case, config.json changes, what the one error line says)
REFUSALS = [
    ("gpt_neo-global-local-window4", {"attention_types": [[["global", "sparse"], 1]]},
     "attention_types ['sparse'] is not supported for gpt_neo (supported: global, local)"),
    ("gpt_neo-global-local-window4", {"attention_types": [[["global"], 3]]},
     "attention_types [[['global'], 3]] give 3 layers but num_layers is 2"),
    ("gpt_neo-global-local-window4", {"activation_function": "mish"},
     "activation_function 'mish' is not supported for gpt_neo"),
    ("opt-tied", {"word_embed_proj_dim": 16},
     "word_embed_proj_dim 16 is not supported for opt (supported: hidden_size (32): no project_in / project_out)"),
    ("opt-tied", {"activation_function": "mish"}, "activation_function 'mish' is not supported for opt"),
    ("qwen2-gqa2-untied", {"use_sliding_window": True, "sliding_window": 4},
     "use_sliding_window True is not supported for qwen2"),
    ("qwen2-gqa2-untied", {"layer_types": ["full_attention", "sliding_attention"]},
     "layer_types ['sliding_attention'] is not supported for qwen2 (supported: full_attention on every layer)"),
    ("qwen3-gqa2-headdim16-untied", {"rms_norm_eps": 1e-5},
     "rms_norm_eps 1e-05 is not supported for qwen3 (supported: 1e-06"),
    ("qwen3-gqa2-headdim16-untied", {"use_sliding_window": True}, "use_sliding_window True is not supported for qwen3"),
    ("qwen3-gqa2-headdim16-untied", {"layer_types": ["full_attention", "sliding_attention"]},
     "layer_types ['sliding_attention'] is not supported for qwen3 (supported: full_attention on every layer)"),
    ("gemma-mqa-headdim16", {"use_bidirectional_attention": True},
     "use_bidirectional_attention True is not supported for gemma (supported: false"),
    ("gemma-mqa-headdim16", {"hidden_act": "mish"}, "hidden_act 'mish' is not supported for gemma"),
    ("olmo-gqa2-untied", {"clip_qkv": 8.0}, "clip_qkv 8.0 is not supported for olmo (supported: null"),
    ("phi3-gqa2", {"rope_parameters": {"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0]}},
     "rope type 'longrope' is not supported for phi3 (supported: default, linear, llama3)"),
    ("phi3-gqa2", {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}},
     "partial_rotary_factor 0.5 is not supported for phi3 (supported: 1.0)"),
    ("starcoder2-gqa2-biases", {"rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0}},
     "rope type 'yarn' is not supported for starcoder2"),
    ("gpt_bigcode-mqa-tied", {"add_cross_attention": True}, "add_cross_attention True is not supported for gpt_bigcode"),
    ("bloom-tied", {"apply_residual_connection_post_layernorm": True},
     "apply_residual_connection_post_layernorm True is not supported for bloom (supported: false"),
    ("bloom-tied", {"pretraining_tp": 2, "slow_but_exact": True}, "slow_but_exact True is not supported for bloom"),
    ("distilbert-tied", {"sinusoidal_pos_embds": True},
     "sinusoidal_pos_embds True is not supported for distilbert (supported: false (learned positions))"),
    ("mt5-gated-gelu", {"feed_forward_proj": "gated-mish"}, "feed_forward_proj 'gated-mish' is not supported for mt5"),
    ("roberta-tied", {"position_embedding_type": "relative_key"},
     "position_embedding_type 'relative_key' is not supported for roberta (supported: absolute)"),
    ("roberta-tied", {"is_decoder": True}, "is_decoder True is not supported for roberta (supported: false (an encoder))"),
    ("roberta-tied", {"pad_token_id": None}, "missing 'pad_token_id' (a roberta config needs it)"),
    ("roberta-tied", {"pad_token_id": 101},
     "pad_token_id 101 is not supported for roberta (supported: a token id below vocab_size (101)"),
    ("roberta-tied", {"type_vocab_size": 0}, "type_vocab_size 0 is not supported for roberta (supported: 1 or more"),
    ("xlm_roberta-tied", {"add_cross_attention": True}, "add_cross_attention True is not supported for xlm_roberta"),
    ("xlm_roberta-tied", {"hidden_act": "mish"}, "hidden_act 'mish' is not supported for xlm_roberta"),
    ("camembert-tied-relu", {"position_embedding_type": "relative_key_query"},
     "position_embedding_type 'relative_key_query' is not supported for camembert (supported: absolute)"),
    ("bart-tied", {"decoder_attention_heads": 2},
     "encoder_attention_heads (4) and decoder_attention_heads (2) differ; stackform uses one n_heads"),
    ("bart-tied", {"activation_function": "mish"}, "activation_function 'mish' is not supported for bart"),
    ("mbart-tied-scaled", {"activation_function": "mish"}, "activation_function 'mish' is not supported for mbart"),
    ("data2vec_text-untied-pad2", {"is_decoder": True}, "is_decoder True is not supported for data2vec_text"),
    ("ctrl-tied", {"layer_norm_epsilon": 1e-5}, "layer_norm_epsilon 1e-05 is not supported for ctrl (supported: 1e-06"),
    ("openai-gpt-tied", {"afn": "gelu_new"}, "afn 'gelu_new' is not supported for openai-gpt (supported: gelu, relu, silu, swish)"),
    ("biogpt-tied-scaled", {"hidden_act": "mish"}, "hidden_act 'mish' is not supported for biogpt"),
    ("plbart-tied-scaled", {"activation_function": "mish"}, "activation_function 'mish' is not supported for plbart"),
    ("blenderbot-tied-1+2-scaled", {"activation_function": "mish"},
     "activation_function 'mish' is not supported for blenderbot"),
    ("mvp-untied-relu", {"use_prompt": True}, "use_prompt True is not supported for mvp (supported: false (no prompt tables))"),
    ("pegasus-shared-scaled-relu", {"decoder_attention_heads": 2},
     "encoder_attention_heads (4) and decoder_attention_heads (2) differ; stackform uses one n_heads"),
    ("pegasus-shared-scaled-relu", {"activation_function": "mish"}, "activation_function 'mish' is not supported for pegasus"),
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    made = {}

    def folder(case_id):
        if case_id not in made:
            made[case_id] = tmp_path_factory.mktemp(case_id)
            save_hf(BY_ID[case_id], made[case_id])
        return made[case_id]
    return folder


@pytest.mark.parametrize("case_id,changes,message", REFUSALS, ids=[f"{r[0]}-{next(iter(r[1]))}" for r in REFUSALS])
def test_unsupported_options_are_refused_by_key_and_value(case_id, changes, message, folders, tmp_path):
    source = folders(case_id)
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((source / name).read_bytes())
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | changes))
    with pytest.raises(InteropError) as error:
        import_hf(tmp_path)
    text = str(error.value)
    assert "\n" not in text and str(tmp_path / "config.json") in text
    assert message in text


def test_mt5_file_with_its_own_lm_head(folders, tmp_path):
    """Released mT5 files hold an untied lm_head.weight although MT5Config always says tied: transformers then
    keeps both tables, and so does import (without the T5 rescale); export writes both back."""
    import torch
    import transformers
    from safetensors.torch import load_file, save_file

    from stackform.assemble import export_hf
    from test_hf_parity import _inputs, _logits

    source = folders("mt5-gated-gelu")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_bytes((source / "config.json").read_bytes())
    tensors = load_file(source / "model.safetensors")
    tensors["lm_head.weight"] = torch.randn_like(tensors["shared.weight"])
    save_file(tensors, tmp_path / "hf" / "model.safetensors", metadata={"format": "pt"})
    ours = import_hf(tmp_path / "hf")
    assert not ours.spec.model.tie_embeddings and not ours.spec.model.head.params.rescale
    export_hf(ours, tmp_path / "back", family="mt5")
    assert torch.equal(load_file(tmp_path / "back" / "model.safetensors")["lm_head.weight"], tensors["lm_head.weight"])
    ids, mask, tgt = _inputs(6)
    for folder in ("hf", "back"):
        hf = transformers.MT5ForConditionalGeneration.from_pretrained(tmp_path / folder).eval()
        theirs, mine, real = _logits(BY_ID["mt5-gated-gelu"], hf, ours, ids, mask, tgt)
        assert (theirs - mine).abs().max() <= 1e-4


def test_gemma_legacy_gelu_is_read_as_transformers_reads_it(folders, tmp_path):
    """Released Gemma configs say hidden_act "gelu"; transformers runs it as the tanh approximation."""
    import torch
    import transformers

    from test_hf_parity import _inputs, _logits

    source = folders("gemma-mqa-headdim16")
    (tmp_path / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes())
    config = json.loads((source / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | {"hidden_act": "gelu"}))
    ours = import_hf(tmp_path)
    assert ours.spec.model.ffn.params.activation == "gelu_tanh"
    hf = transformers.GemmaForCausalLM.from_pretrained(tmp_path).eval()
    ids, mask, tgt = _inputs(9)
    theirs, mine, real = _logits(BY_ID["gemma-mqa-headdim16"], hf, ours, ids, mask, tgt)
    assert (theirs[real] - mine[real]).abs().max() <= 1e-4
