"""Tiny, randomly initialized Hugging Face models of every supported family (never a download).

Every parameter (and Marian's logits-bias buffer) gets random noise, so a bias or norm
mapped to the wrong place changes the logits; zero-initialized biases would hide it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

VOCAB = 101  # odd on purpose


@dataclass(frozen=True)
class Case:
    id: str
    family: str  # gpt2 | bert | llama | t5 | marian | qwen3 | ...
    kind: str  # decoder | encoder | encoder_decoder
    make: Callable[[], Any]
    auto_family: str | None = None  # the family export picks without --family, when another holds the spec too


def _gpt2(**kw: Any) -> Callable[[], Any]:
    def make():
        from transformers import GPT2Config, GPT2LMHeadModel

        base = dict(vocab_size=VOCAB, n_positions=40, n_embd=32, n_layer=2, n_head=4, bos_token_id=1, eos_token_id=2)
        return GPT2LMHeadModel(GPT2Config(**(base | kw)))
    return make


def _bert(**kw: Any) -> Callable[[], Any]:
    def make():
        from transformers import BertConfig, BertForMaskedLM

        base = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=64, max_position_embeddings=40, pad_token_id=0)
        return BertForMaskedLM(BertConfig(**(base | kw)))
    return make


def _llama(mistral: bool = False, **kw: Any) -> Callable[[], Any]:
    def make():
        from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

        base = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                    bos_token_id=1, eos_token_id=2)
        if mistral:
            return MistralForCausalLM(MistralConfig(**(base | kw)))
        return LlamaForCausalLM(LlamaConfig(**(base | kw)))
    return make


def _t5(**kw: Any) -> Callable[[], Any]:
    def make():
        from transformers import T5Config, T5ForConditionalGeneration

        base = dict(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
        return T5ForConditionalGeneration(T5Config(**(base | kw)))
    return make


def _marian(**kw: Any) -> Callable[[], Any]:
    def make():
        from transformers import MarianConfig, MarianMTModel

        base = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                    decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                    max_position_embeddings=64, pad_token_id=VOCAB - 1, decoder_start_token_id=VOCAB - 1,
                    eos_token_id=0, forced_eos_token_id=None)
        return MarianMTModel(MarianConfig(**(base | kw)))
    return make


def _hf(config: str, model: str, base: dict[str, Any]) -> Callable[..., Callable[[], Any]]:
    """A maker of ``transformers.<model>(transformers.<config>(**base | kw))``."""
    def with_options(**kw: Any) -> Callable[[], Any]:
        def make():
            import transformers

            return getattr(transformers, model)(getattr(transformers, config)(**(base | kw)))
        return make
    return with_options


_DECODER = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=64, bos_token_id=1, eos_token_id=2, pad_token_id=0)
_qwen2 = _hf("Qwen2Config", "Qwen2ForCausalLM", _DECODER)
_qwen3 = _hf("Qwen3Config", "Qwen3ForCausalLM", _DECODER | dict(head_dim=16, tie_word_embeddings=False))
_gemma = _hf("GemmaConfig", "GemmaForCausalLM", _DECODER | dict(head_dim=16))
_olmo = _hf("OlmoConfig", "OlmoForCausalLM", _DECODER)
_phi3 = _hf("Phi3Config", "Phi3ForCausalLM", _DECODER)
_starcoder2 = _hf("Starcoder2Config", "Starcoder2ForCausalLM", _DECODER)
_bigcode = _hf("GPTBigCodeConfig", "GPTBigCodeForCausalLM",
               dict(vocab_size=VOCAB, n_positions=40, n_embd=32, n_layer=2, n_head=4, bos_token_id=1, eos_token_id=2))
_bloom = _hf("BloomConfig", "BloomForCausalLM",
             dict(vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4, bos_token_id=1, eos_token_id=2, pad_token_id=0))
_distilbert = _hf("DistilBertConfig", "DistilBertForMaskedLM",
                  dict(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=40,
                       pad_token_id=0))
_mt5 = _hf("MT5Config", "MT5ForConditionalGeneration",
           dict(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, pad_token_id=0,
                eos_token_id=1, decoder_start_token_id=0))
_opt = _hf("OPTConfig", "OPTForCausalLM",
           dict(vocab_size=VOCAB, hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=40, bos_token_id=1, eos_token_id=2, pad_token_id=0))
_gpt_neo = _hf("GPTNeoConfig", "GPTNeoForCausalLM",
               dict(vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4, max_position_embeddings=40,
                    window_size=4, attention_types=[[["global", "local"], 1]], bos_token_id=1, eos_token_id=2))
_roberta = _hf("RobertaConfig", "RobertaForMaskedLM",
               dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    max_position_embeddings=42, type_vocab_size=1, pad_token_id=1))
_xlm_roberta = _hf("XLMRobertaConfig", "XLMRobertaForMaskedLM",
                   dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=42, type_vocab_size=1, pad_token_id=1))
_camembert = _hf("CamembertConfig", "CamembertForMaskedLM",
                 dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                      max_position_embeddings=42, type_vocab_size=1, pad_token_id=1, bos_token_id=5, eos_token_id=6))
_data2vec_text = _hf("Data2VecTextConfig", "Data2VecTextForMaskedLM",
                     dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64, max_position_embeddings=42, type_vocab_size=1, pad_token_id=1))
_ctrl = _hf("CTRLConfig", "CTRLLMHeadModel",
            dict(vocab_size=VOCAB, n_positions=40, n_embd=32, dff=64, n_layer=2, n_head=4, bos_token_id=1, eos_token_id=2))
_openai_gpt = _hf("OpenAIGPTConfig", "OpenAIGPTLMHeadModel",
                  dict(vocab_size=VOCAB, n_positions=40, n_embd=32, n_layer=2, n_head=4, bos_token_id=1, eos_token_id=2))
_biogpt = _hf("BioGptConfig", "BioGptForCausalLM",
              dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                   max_position_embeddings=40, pad_token_id=0, bos_token_id=1, eos_token_id=2))
_SEQ2SEQ = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=40,
                pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
_bart = _hf("BartConfig", "BartForConditionalGeneration", _SEQ2SEQ)
_mbart = _hf("MBartConfig", "MBartForConditionalGeneration", _SEQ2SEQ | dict(scale_embedding=True))
_plbart = _hf("PLBartConfig", "PLBartForConditionalGeneration", _SEQ2SEQ | dict(scale_embedding=True))
_blenderbot = _hf("BlenderbotConfig", "BlenderbotForConditionalGeneration",
                  _SEQ2SEQ | dict(pad_token_id=0, bos_token_id=1, decoder_start_token_id=1, encoder_no_repeat_ngram_size=0))
_mvp = _hf("MvpConfig", "MvpForConditionalGeneration", _SEQ2SEQ)
_pegasus = _hf("PegasusConfig", "PegasusForConditionalGeneration",
               _SEQ2SEQ | dict(pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, forced_eos_token_id=None))

CASES = [
    Case("gpt2-tied", "gpt2", "decoder", _gpt2()),
    Case("gpt2-untied-3heads-gelu", "gpt2", "decoder",
         _gpt2(n_embd=48, n_head=3, n_layer=1, n_inner=72, activation_function="gelu", tie_word_embeddings=False)),
    Case("gpt2-6heads-relu-unscaled", "gpt2", "decoder",
         _gpt2(n_embd=36, n_head=6, activation_function="relu", scale_attn_weights=False)),
    Case("bert-tied", "bert", "encoder", _bert()),
    Case("bert-untied-6heads-3types", "bert", "encoder",
         _bert(hidden_size=48, num_attention_heads=6, num_hidden_layers=1, intermediate_size=80, type_vocab_size=3,
               hidden_act="gelu_new", tie_word_embeddings=False)),
    Case("llama-gqa2-untied", "llama", "decoder", _llama()),
    Case("llama-mqa-tied-headdim-llama3", "llama", "decoder",
         _llama(hidden_size=48, num_attention_heads=6, num_key_value_heads=1, head_dim=16, tie_word_embeddings=True,
                rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 16})),
    Case("llama-mha-biases-linear-rope", "llama", "decoder",
         _llama(num_key_value_heads=4, attention_bias=True, mlp_bias=True, num_hidden_layers=1,
                rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0})),
    Case("mistral-window4", "llama", "decoder", _llama(mistral=True, sliding_window=4)),
    Case("t5-relu-rescaled", "t5", "encoder_decoder", _t5()),
    Case("t5-gated-3heads-kv12-v1.1", "t5", "encoder_decoder",
         _t5(num_heads=3, d_kv=12, feed_forward_proj="gated-gelu", tie_word_embeddings=False, num_decoder_layers=1,
             relative_attention_num_buckets=8, relative_attention_max_distance=12)),
    # is_gated_act in config.json wins over feed_forward_proj in transformers
    Case("t5-relu-gated-by-is_gated_act", "t5", "encoder_decoder", _t5(num_layers=1, is_gated_act=True)),
    Case("marian-shared-scaled-swish", "marian", "encoder_decoder",
         _marian(scale_embedding=True, activation_function="swish")),
    Case("marian-unshared-untied-6heads", "marian", "encoder_decoder",
         _marian(d_model=48, encoder_attention_heads=6, decoder_attention_heads=6, decoder_layers=1,
                 decoder_ffn_dim=80, activation_function="relu", share_encoder_decoder_embeddings=False,
                 tie_word_embeddings=False)),
    # shared but untied: transformers 5 unties the stacks' tables from model.shared too
    Case("marian-shared-untied", "marian", "encoder_decoder", _marian(decoder_layers=1, tie_word_embeddings=False)),
    Case("qwen2-gqa2-untied", "qwen2", "decoder", _qwen2()),
    Case("qwen2-mha-tied", "qwen2", "decoder",
         _qwen2(num_key_value_heads=4, tie_word_embeddings=True, num_hidden_layers=1)),
    Case("qwen3-gqa2-headdim16-untied", "qwen3", "decoder", _qwen3()),
    Case("qwen3-mha-biases-tied", "qwen3", "decoder",
         _qwen3(num_key_value_heads=4, head_dim=8, attention_bias=True, tie_word_embeddings=True, num_hidden_layers=1)),
    Case("gemma-mqa-headdim16", "gemma", "decoder", _gemma(num_key_value_heads=1)),
    Case("gemma-gqa2-untied-eps", "gemma", "decoder", _gemma(tie_word_embeddings=False, rms_norm_eps=1e-5)),
    Case("olmo-gqa2-untied", "olmo", "decoder", _olmo()),
    Case("olmo-mha-biases-tied", "olmo", "decoder",
         _olmo(num_key_value_heads=4, attention_bias=True, tie_word_embeddings=True, num_hidden_layers=1)),
    Case("phi3-gqa2", "phi3", "decoder", _phi3(), auto_family="llama"),
    Case("phi3-mha-window4-tied", "phi3", "decoder",
         _phi3(num_key_value_heads=4, sliding_window=4, tie_word_embeddings=True), auto_family="llama"),
    Case("starcoder2-gqa2-biases", "starcoder2", "decoder", _starcoder2()),
    Case("starcoder2-mqa-nobias-window4-untied", "starcoder2", "decoder",
         _starcoder2(num_key_value_heads=1, use_bias=False, sliding_window=4, tie_word_embeddings=False,
                     hidden_act="gelu")),
    Case("gpt_bigcode-mqa-tied", "gpt_bigcode", "decoder", _bigcode()),
    Case("gpt_bigcode-mha-untied-relu-unscaled", "gpt_bigcode", "decoder",
         _bigcode(multi_query=False, n_inner=48, activation_function="relu", scale_attn_weights=False,
                  tie_word_embeddings=False), auto_family="gpt2"),
    Case("bloom-tied", "bloom", "decoder", _bloom()),
    Case("bloom-6heads-untied", "bloom", "decoder", _bloom(hidden_size=48, n_head=6, tie_word_embeddings=False)),
    Case("distilbert-tied", "distilbert", "encoder", _distilbert()),
    Case("distilbert-untied-6heads-gelu_new", "distilbert", "encoder",
         _distilbert(dim=48, n_heads=6, n_layers=1, hidden_dim=80, activation="gelu_new", tie_word_embeddings=False)),
    Case("mt5-gated-gelu", "mt5", "encoder_decoder", _mt5(), auto_family="t5"),
    Case("mt5-3heads-kv12-1decoder", "mt5", "encoder_decoder",
         _mt5(num_heads=3, d_kv=12, num_decoder_layers=1, relative_attention_num_buckets=8,
              relative_attention_max_distance=12), auto_family="t5"),
    Case("opt-tied", "opt", "decoder", _opt()),
    Case("opt-untied-6heads-gelu-nobias", "opt", "decoder",
         _opt(hidden_size=48, num_attention_heads=6, num_hidden_layers=1, ffn_dim=80, activation_function="gelu",
              enable_bias=False, tie_word_embeddings=False)),
    Case("opt-postnorm", "opt", "decoder", _opt(do_layer_norm_before=False)),
    Case("opt-prenorm-without-final-norm", "opt", "decoder", _opt(num_hidden_layers=1, _remove_final_layer_norm=True)),
    Case("gpt_neo-global-local-window4", "gpt_neo", "decoder", _gpt_neo()),
    Case("gpt_neo-local-local-global-untied-relu", "gpt_neo", "decoder",
         _gpt_neo(num_layers=3, attention_types=[[["local"], 2], [["global"], 1]], window_size=3,
                  intermediate_size=48, activation_function="relu", tie_word_embeddings=False)),
    Case("roberta-tied", "roberta", "encoder", _roberta()),
    # pad 3: positions start at row 4; 6 heads, 2 token types, gelu_new in the layers (the head keeps gelu)
    Case("roberta-untied-6heads-pad3-gelu_new", "roberta", "encoder",
         _roberta(hidden_size=48, num_attention_heads=6, num_hidden_layers=1, intermediate_size=80, pad_token_id=3,
                  max_position_embeddings=44, type_vocab_size=2, hidden_act="gelu_new", tie_word_embeddings=False)),
    Case("xlm_roberta-tied", "xlm_roberta", "encoder", _xlm_roberta(), auto_family="roberta"),
    Case("camembert-tied-relu", "camembert", "encoder", _camembert(hidden_act="relu"), auto_family="roberta"),
    Case("data2vec_text-untied-pad2", "data2vec_text", "encoder",
         _data2vec_text(pad_token_id=2, max_position_embeddings=43, tie_word_embeddings=False), auto_family="roberta"),
    Case("ctrl-tied", "ctrl", "decoder", _ctrl()),
    Case("ctrl-untied-6heads", "ctrl", "decoder", _ctrl(n_embd=48, n_head=6, n_layer=1, dff=80, tie_word_embeddings=False)),
    Case("openai-gpt-tied", "openai-gpt", "decoder", _openai_gpt()),
    Case("openai-gpt-untied-6heads-relu", "openai-gpt", "decoder",
         _openai_gpt(n_embd=48, n_head=6, n_layer=1, afn="relu", tie_word_embeddings=False)),
    Case("biogpt-tied-scaled", "biogpt", "decoder", _biogpt()),
    Case("biogpt-untied-6heads-unscaled-relu", "biogpt", "decoder",
         _biogpt(hidden_size=48, num_attention_heads=6, num_hidden_layers=1, intermediate_size=80, hidden_act="relu",
                 scale_embedding=False, tie_word_embeddings=False), auto_family="opt"),  # unscaled: an OPT spec
    Case("bart-tied", "bart", "encoder_decoder", _bart()),
    Case("bart-untied-6heads-2+1-scaled-relu", "bart", "encoder_decoder",
         _bart(d_model=48, encoder_attention_heads=6, decoder_attention_heads=6, decoder_layers=1, decoder_ffn_dim=80,
               activation_function="relu", scale_embedding=True, tie_word_embeddings=False)),
    Case("mbart-tied-scaled", "mbart", "encoder_decoder", _mbart()),
    Case("mbart-untied-1+2-unscaled-start0", "mbart", "encoder_decoder",
         _mbart(encoder_layers=1, encoder_ffn_dim=48, scale_embedding=False, decoder_start_token_id=0,
                tie_word_embeddings=False)),
    Case("plbart-tied-scaled", "plbart", "encoder_decoder", _plbart(), auto_family="bart"),
    Case("blenderbot-tied-1+2-scaled", "blenderbot", "encoder_decoder",
         _blenderbot(encoder_layers=1, encoder_ffn_dim=48, scale_embedding=True)),
    Case("blenderbot-untied-6heads-relu", "blenderbot", "encoder_decoder",
         _blenderbot(d_model=48, encoder_attention_heads=6, decoder_attention_heads=6, activation_function="relu",
                     tie_word_embeddings=False)),
    Case("mvp-untied-relu", "mvp", "encoder_decoder", _mvp(activation_function="relu", tie_word_embeddings=False),
         auto_family="bart"),
    Case("pegasus-shared-scaled-relu", "pegasus", "encoder_decoder",
         _pegasus(scale_embedding=True, activation_function="relu")),
    Case("pegasus-untied-6heads-2+1-gelu", "pegasus", "encoder_decoder",
         _pegasus(d_model=48, encoder_attention_heads=6, decoder_attention_heads=6, decoder_layers=1,
                  decoder_ffn_dim=80, tie_word_embeddings=False)),
]
BY_ID = {case.id: case for case in CASES}


def build(case: Case, seed: int = 0) -> Any:
    """The Hugging Face model of ``case`` with noise on every parameter, in eval mode."""
    torch.manual_seed(seed)
    model = case.make()
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:  # not Marian's frozen sinusoidal table, which is computed, not saved
                param.add_(torch.randn_like(param) * 0.1)
        for name, buffer in model.named_buffers():
            if name.endswith("final_logits_bias"):
                buffer.copy_(torch.randn_like(buffer) * 0.1)
    return model.eval()


def save_hf(case: Case, folder, seed: int = 0) -> Any:
    """Build, save (safetensors) and return the Hugging Face model of ``case``."""
    model = build(case, seed)
    model.save_pretrained(folder)
    return model
