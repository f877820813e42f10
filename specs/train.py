"""The ``train:`` section of a spec."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, PositiveInt, Tag,
                      model_validator)

from .data_formats import HFDatasetData, JsonlData, ParquetData

TASK_FOR_KIND = {"decoder": "causal_lm", "encoder": "mlm", "encoder_decoder": "seq2seq"}
PAIR_DATA = ("numbers", "copy", "reverse")  # builtin corpora made of (source, target) pairs


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class BuiltinData(_Strict):
    """A corpus that ships with Python or is generated: nothing is downloaded."""

    type: Literal["builtin"] = "builtin"
    name: Literal["pydoc", "numbers", "copy", "reverse"] = "pydoc"
    val_fraction: float = Field(0.05, gt=0, lt=1)
    n_examples: PositiveInt = Field(50_000, description="generated tasks: training examples to draw")
    n_val: PositiveInt = Field(1000, description="generated tasks: held-out examples to evaluate on")
    max_number: PositiveInt = Field(999_999, le=999_999_999_999, description="numbers: largest integer")
    min_length: PositiveInt = Field(1, description="copy/reverse: shortest string")
    max_length: PositiveInt = Field(24, description="copy/reverse: longest string")

    @model_validator(mode="after")
    def _lengths(self) -> "BuiltinData":
        if self.min_length > self.max_length:
            raise ValueError(f"@min_length@ min_length ({self.min_length}) is above max_length ({self.max_length})")
        return self


class TextData(_Strict):
    """UTF-8 text from a file or every file of a directory."""

    type: Literal["text"]
    path: str
    val_fraction: float = Field(0.05, gt=0, lt=1)


class PairsData(_Strict):
    """Tab-separated source/target pairs, one per line (seq2seq)."""

    type: Literal["pairs"]
    path: str
    val_fraction: float = Field(0.05, gt=0, lt=1)


DataSpec = Annotated[Union[BuiltinData, TextData, PairsData, JsonlData, ParquetData, HFDatasetData],
                     Field(discriminator="type")]
LOGGERS = ("jsonl", "csv", "tensorboard", "wandb")


class BytesTokenizer(_Strict):
    """UTF-8 bytes as ids 0..255, special ids from the model section (default 256, 257, 258)."""

    type: Literal["bytes"] = "bytes"


class BpeTokenizer(_Strict):
    """Byte-level BPE trained on the training split once (cached), saved in the run folder as
    tokenizer.json. Its special tokens come first: <pad> 0, <bos> 1, <eos> 2, <mask> 3."""

    type: Literal["bpe"]
    vocab_size: int | None = Field(None, ge=260, le=1 << 20, description="default: model.vocab_size")
    min_frequency: PositiveInt = Field(2, description="pairs seen fewer times are not merged")


class FileTokenizer(_Strict):
    """A Hugging Face ``tokenizer.json`` (path relative to the spec file)."""

    type: Literal["file"]
    path: str = Field(min_length=1)


class NoTokenizer(_Strict):
    """Token ids only (an import without tokenizer.json): text in or out is refused, ids work."""

    type: Literal["none"]


def _tokenizer_tag(value: Any) -> Any:
    return value if isinstance(value, str) else value.get("type") if isinstance(value, dict) else \
        getattr(value, "type", None)


def _tokenizer_shorthand(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value  # `tokenizer: bytes` = {type: bytes}


def _tokenizer_string_forms(schema: dict) -> None:
    """The schema also takes the short forms ``tokenizer: bytes`` and ``tokenizer: none``."""
    forms = {key: schema.pop(key) for key in ("oneOf", "anyOf") if key in schema}
    schema["anyOf"] = [{"type": "string", "enum": ["bytes", "none"]}, *(forms.get("anyOf") or []),
                       *([{"oneOf": forms["oneOf"]}] if "oneOf" in forms else [])]


TokenizerSpec = Annotated[
    Union[Annotated[BytesTokenizer, Tag("bytes")], Annotated[BpeTokenizer, Tag("bpe")],
          Annotated[FileTokenizer, Tag("file")], Annotated[NoTokenizer, Tag("none")]],
    Discriminator(_tokenizer_tag), BeforeValidator(_tokenizer_shorthand),
]


class LoraSpec(_Strict):
    """Low-rank adapters on named linear layers: W x + (alpha / rank) B A x, only A and B trained."""

    rank: PositiveInt = Field(8, le=4096)
    alpha: float = Field(16.0, gt=0)
    targets: list[str] = Field(
        default_factory=lambda: ["*attn.*"], min_length=1,
        description="patterns (fnmatch) of linear layers' names, e.g. '*attn.*', 'stack.layers.[0-3].ffn.*'")
    dropout: float = Field(0.0, ge=0, lt=1)


class OptimizerSpec(_Strict):
    """AdamW; no weight decay on norms, biases and embeddings."""

    type: Literal["adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.1, ge=0)


class ScheduleSpec(_Strict):
    """Learning-rate schedule: cosine, linear, constant (all with warmup) or the paper's noam."""

    type: Literal["cosine", "linear", "constant", "noam"] = "cosine"
    warmup: int = Field(100, ge=0, description="steps of linear warmup")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine/linear: final lr as a fraction of lr")

    @model_validator(mode="after")
    def _noam_warmup(self) -> "ScheduleSpec":
        if self.type == "noam" and self.warmup < 1:
            raise ValueError("@warmup@ noam needs warmup >= 1 (its peak is at step = warmup)")
        return self


class FsdpSpec(_Strict):
    """FSDP2 settings (``parallel: fsdp``): mixed precision and resharding of each layer."""

    param_dtype: Literal["fp32", "bf16"] = Field(
        "fp32", description="dtype of the gathered parameters, so of the compute and the all-gathers")
    reduce_dtype: Literal["fp32", "bf16"] = Field("fp32", description="dtype of the gradient reduce-scatter")
    reshard_after_forward: bool = Field(
        True, description="free each layer's gathered weights after forward (gather again in backward)")


class TrainSpec(_Strict):
    """How to train: task, data, optimizer, schedule, precision, checkpoints."""

    task: Literal["causal_lm", "mlm", "seq2seq"] | None = None
    data: DataSpec | None = Field(None, description="default: builtin pydoc for text tasks, builtin numbers for seq2seq")
    tokenizer: TokenizerSpec = Field(
        default_factory=BytesTokenizer,
        description="bytes (default), {type: bpe, vocab_size: N}, {type: file, path: tokenizer.json} or none",
        json_schema_extra=_tokenizer_string_forms)
    init_from: str | None = Field(
        None, min_length=1, description="start from these weights: a run folder, a .safetensors checkpoint or "
                                        "an import-hf folder (relative to the spec file); the model must fit them")
    freeze: list[str] = Field(
        default_factory=list, description="patterns (fnmatch) of parameter names kept fixed, e.g. 'embed.*'")
    lora: LoraSpec | None = Field(None, description="train low-rank adapters on these linear layers only")
    batch_size: PositiveInt = Field(
        32, description="sequences per micro-batch (a step sees batch_size * grad_accum); "
                        "the global batch under torchrun, split evenly across processes")
    seq_len: PositiveInt | None = Field(None, description="tokens per training window (causal_lm, mlm; seq2seq batches are as long as their longest pair); default model.max_len")
    steps: PositiveInt = 1000
    max_minutes: float | None = Field(
        None, gt=0, description="wall-time budget of the whole run (a resume counts the time spent): it stops at this "
                                "or at steps, whichever comes first; warmup and decay follow it (docs/training.md)"
    )
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    grad_clip: float | None = Field(1.0, gt=0)
    grad_accum: PositiveInt = 1
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = Field(False, description="torch.compile the model (the fused head and loss run eagerly after it)")
    activation_checkpointing: bool = False
    device: str = "auto"
    seed: int = 0
    eval_every: PositiveInt = 200
    eval_steps: PositiveInt = Field(20, description="validation batches per evaluation (fewer if the split is smaller)")
    save_every: PositiveInt | None = Field(None, description="steps between checkpoints; default: only at the end")
    log_every: PositiveInt = Field(50, description="steps between train lines in metrics.jsonl and the log")
    samples: int = Field(3, ge=0, description="samples printed and saved at the end")
    sample_tokens: PositiveInt = 200
    out_dir: str | None = None
    parallel: Literal["auto", "none", "ddp", "fsdp"] = Field(
        "auto", description="several processes (torchrun): auto = ddp; ignored by a single process")
    fsdp: FsdpSpec = Field(default_factory=FsdpSpec, description="settings of parallel: fsdp")
    on_nan: Literal["stop", "skip"] = "stop"
    log: list[Literal["jsonl", "csv", "tensorboard", "wandb"]] = Field(
        default_factory=lambda: ["jsonl"], description="where metrics go besides the console: metrics.jsonl "
        "(always written), metrics.csv, tensorboard/ (extra tensorboard), wandb/ (extra wandb; offline works)")
    keep_best: bool = Field(False, description="also keep best.safetensors: the weights of the best validation "
                                               "loss so far")
    packing: bool = Field(
        False, description="windows packed with whole documents (causal_lm, mlm) or rows with several "
                           "(source, target) pairs (seq2seq), attention and positions kept within each "
                           "document, no loss across a boundary (docs/training.md)")
    packing_separator: str | None = Field(
        None, min_length=1, description="builtin data with packing: also split its documents at this text "
                                        "(documents are otherwise the files of a folder, pydoc's topics)")

    @model_validator(mode="after")
    def _warmup_fits(self) -> "TrainSpec":
        if self.schedule.type != "noam" and self.schedule.warmup > self.steps:
            raise ValueError(f"@schedule.warmup@ warmup ({self.schedule.warmup}) is longer than steps ({self.steps})")
        return self

    @model_validator(mode="after")
    def _fsdp_needs_fsdp(self) -> "TrainSpec":
        if self.fsdp != FsdpSpec() and self.parallel != "fsdp":  # defaults pass: dumped specs hold them
            raise ValueError(f"@fsdp@ fsdp settings need parallel: fsdp (parallel is {self.parallel})")
        return self

    def problem_with(self, model: Any) -> tuple[str, str] | None:
        """(dotted path, message) when this section does not fit the model spec, else None."""
        data = self.data
        pairs = data.type == "pairs" or (data.type == "builtin" and data.name in PAIR_DATA) or getattr(
            data, "pairs", False)
        what = f"{data.type} data" if data.type != "builtin" else f"builtin '{data.name}'"
        if self.task == "seq2seq" and not pairs:
            return "train.data", (f"{what} is text; task seq2seq needs pairs (numbers, copy, reverse, type: pairs, "
                                  "or source_field and target_field)")
        if self.task in ("causal_lm", "mlm") and pairs:
            return "train.data", f"{what} is made of pairs (seq2seq); task {self.task} needs text (pydoc or type: text)"
        if self.packing_separator is not None and not self.packing:
            return "train.packing_separator", "a packing separator needs packing: true"
        if self.packing_separator is not None and pairs:
            return ("train.packing_separator", f"{what}: seq2seq packs whole pairs (a line, a generated pair); "
                    "a separator splits text documents only")
        if self.packing_separator is not None and data.type != "builtin":
            return ("train.packing_separator", f"{what}: the documents are the files or records (each ends with eos); "
                    "a separator applies to builtin data only")
        if self.seq_len is not None and self.task == "seq2seq":  # batches are as long as their longest pair
            return "train.seq_len", "seq2seq pairs set their own lengths; leave seq_len out"
        if self.seq_len is not None and self.seq_len > model.max_len:
            return "train.seq_len", f"seq_len ({self.seq_len}) exceeds model.max_len ({model.max_len})"
        return None
