"""The ``train:`` section of a spec."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

TASK_FOR_KIND = {"decoder": "causal_lm", "encoder": "mlm", "encoder_decoder": "seq2seq"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BuiltinData(_Strict):
    """A corpus that ships with Python or is generated: nothing is downloaded."""

    type: Literal["builtin"] = "builtin"
    name: Literal["pydoc", "numbers", "copy", "reverse"] = "pydoc"
    val_fraction: float = Field(0.05, gt=0, lt=1)
    n_examples: PositiveInt = Field(50_000, description="generated tasks: examples to draw")
    max_number: PositiveInt = Field(999_999, description="numbers: largest integer")


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


DataSpec = Annotated[Union[BuiltinData, TextData, PairsData], Field(discriminator="type")]


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
    warmup: int = Field(100, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)


class TrainSpec(_Strict):
    """How to train: task, data, optimizer, schedule, precision, checkpoints."""

    task: Literal["causal_lm", "mlm", "seq2seq"] | None = None
    data: DataSpec = Field(default_factory=BuiltinData)
    tokenizer: Literal["bytes"] = "bytes"
    batch_size: PositiveInt = 32
    seq_len: PositiveInt | None = None
    steps: PositiveInt = 1000
    max_minutes: float | None = Field(None, gt=0, description="stop early after this wall time")
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    grad_clip: float | None = Field(1.0, gt=0)
    grad_accum: PositiveInt = 1
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = False
    activation_checkpointing: bool = False
    device: str = "auto"
    seed: int = 0
    eval_every: PositiveInt = 200
    eval_steps: PositiveInt = 20
    save_every: PositiveInt | None = None
    samples: int = Field(3, ge=0)
    sample_tokens: PositiveInt = 200
    out_dir: str | None = None
    parallel: Literal["auto", "none", "ddp", "fsdp"] = "auto"
    on_nan: Literal["stop", "skip"] = "stop"

    @model_validator(mode="after")
    def _warmup_fits(self) -> "TrainSpec":
        if self.schedule.type != "noam" and self.schedule.warmup > self.steps:
            raise ValueError(f"@schedule.warmup@ warmup ({self.schedule.warmup}) is longer than steps ({self.steps})")
        return self
