"""Config options an importer does not support are refused in one line that names the key, its value
and what the family supports (never a silent approximation). One saved folder per family, edited."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from hf_cases import BY_ID, save_hf  # noqa: E402
from stackform.assemble import import_hf  # noqa: E402
from stackform.assemble.interop import InteropError  # noqa: E402

# (case, config.json changes, what the one error line says)
REFUSALS = [
    ("qwen3-gqa2-headdim16-untied", {"rms_norm_eps": 1e-5}, "rms_norm_eps 1e-05 is not supported for qwen3 (supported: 1e-06"),
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
