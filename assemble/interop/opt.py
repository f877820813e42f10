"""OPT (``OPTForCausalLM``): GPT-2's architecture with nn.Linear q / k / v / out projections, a ReLU MLP
(``fc1`` / ``fc2``) and learned positions read at an offset of 2 (``positional: {type: learned, offset: 2}``:
the table has max_len + 2 rows, as ``OPTLearnedPositionalEmbedding`` stores it)."""

from __future__ import annotations

from typing import Any

from stackform.specs import ModelSpec

from .family import HF_ACTIVATIONS, Config, Family, ffn_hidden
from .rules import Rule, linear, norm, same, self_attention

OFFSET = 2  # fixed in transformers' OPTLearnedPositionalEmbedding


class OPT(Family):
    """Hugging Face OPT: pre-norm layers with a final norm (every released size but 350m), or post-norm layers
    without one (``do_layer_norm_before: false``; 350m also projects its embeddings, which is refused)."""

    name = "opt"
    model_types = ("opt",)
    prefix = "model."
    kind = "decoder"
    blocks = {"positional": ("learned",), "norm": ("layernorm",), "ffn": ("mlp",), "residual": ("pre", "post")}

    def spec(self, config: Config, names: set[str] | None) -> dict[str, Any]:
        d_model, vocab = config.need("hidden_size"), config.need("vocab_size")
        pre = config.get("do_layer_norm_before", True)
        # transformers builds the final norm only for pre-norm layers without _remove_final_layer_norm
        final = pre and not config.get("_remove_final_layer_norm", False)
        if config.get("word_embed_proj_dim", d_model) != d_model:
            raise config.unsupported("word_embed_proj_dim", config.get("word_embed_proj_dim"),
                                     f"hidden_size ({d_model}): no project_in / project_out")
        if not config.get("layer_norm_elementwise_affine", True):
            raise config.unsupported("layer_norm_elementwise_affine", False, "true")
        bias = config.get("enable_bias", True)
        return {
            "kind": "decoder", "vocab_size": vocab, "max_len": config.get("max_position_embeddings", 2048),
            "d_model": d_model, "n_heads": config.need("num_attention_heads"),
            "n_layers": config.need("num_hidden_layers"), "dropout": config.get("dropout", 0.1),
            "positional": {"type": "learned", "offset": OFFSET}, "residual": "pre" if pre else "post",
            "final_norm": None if final == pre else final,
            "norm": {"type": "layernorm", "eps": 1e-5},
            "attention": {"type": "mha", "bias": bias, "dropout": config.get("attention_dropout", 0.0)},
            "ffn": {"type": "mlp", "activation": config.activation("activation_function", "relu"),
                    "hidden": config.need("ffn_dim"), "bias": bias},
            "tie_embeddings": config.get("tie_word_embeddings", True),
            **config.token_ids(vocab, bos_id="bos_token_id", eos_id="eos_token_id", pad_id="pad_token_id"),
        }

    def config(self, model: ModelSpec) -> dict[str, Any]:
        attention, ffn = model.attention.params, model.ffn.params
        plan = model.plan("decoder")
        pre = plan.residual.type == "pre"
        final = plan.final_norm if plan.final_norm is not None else pre
        return {
            "model_type": "opt", "architectures": ["OPTForCausalLM"],
            "vocab_size": model.vocab_size, "max_position_embeddings": model.max_len, "hidden_size": model.d_model,
            "word_embed_proj_dim": model.d_model, "num_attention_heads": model.n_heads,
            "num_hidden_layers": model.n_layers_of("decoder"), "ffn_dim": ffn_hidden(model, model.ffn),
            "activation_function": HF_ACTIVATIONS[ffn.activation], "do_layer_norm_before": pre,
            "_remove_final_layer_norm": pre and not final,
            "enable_bias": attention.bias, "dropout": model.dropout, "attention_dropout": attention.dropout,
            "tie_word_embeddings": model.tie_embeddings,
            "bos_token_id": model.bos_id, "eos_token_id": model.eos_id, "pad_token_id": model.pad_id,
        }

    def rules(self, model: ModelSpec) -> list[Rule]:
        bias = model.attention.params.bias
        size = model.d_model
        d = "model.decoder"
        rules = [same("embed.weight", f"{d}.embed_tokens.weight"),
                 same("stack.positional.weight", f"{d}.embed_positions.weight")]
        for i in range(model.n_layers_of("decoder")):
            ours, theirs = f"stack.layers.{i}", f"{d}.layers.{i}"
            a = f"{theirs}.self_attn"
            rules += self_attention(f"{ours}.self_attn", f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj",
                                    f"{a}.out_proj", size, size, bias)
            rules += norm(f"{ours}.self_res.norm", f"{theirs}.self_attn_layer_norm")
            rules += linear(f"{ours}.ffn.up", f"{theirs}.fc1", bias) + linear(f"{ours}.ffn.down", f"{theirs}.fc2", bias)
            rules += norm(f"{ours}.ffn_res.norm", f"{theirs}.final_layer_norm")
        plan = model.plan("decoder")
        if plan.final_norm if plan.final_norm is not None else plan.residual.type == "pre":
            rules += norm("stack.final_norm", f"{d}.final_layer_norm")
        if not model.tie_embeddings:
            rules.append(same("head.weight", "lm_head.weight"))
        return rules


FAMILY = OPT()
