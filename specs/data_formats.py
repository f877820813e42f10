"""``train.data`` of records: JSON lines, Parquet files and saved Hugging Face datasets.

Each names the field that holds the text (``field``, causal_lm and mlm) or two fields that hold
a (source, target) pair (``source_field`` and ``target_field``, seq2seq). ``path`` is a file or a
folder of such files, relative to the spec file that names it (docs/training.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Records(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    path: str
    field: str = Field("text", min_length=1, description="causal_lm, mlm: the field that holds each document")
    source_field: str | None = Field(None, min_length=1, description="seq2seq: the field of each source")
    target_field: str | None = Field(None, min_length=1, description="seq2seq: the field of each target")
    val_fraction: float = Field(0.05, gt=0, lt=1)

    @model_validator(mode="after")
    def _both_pair_fields(self) -> "_Records":
        if (self.source_field is None) != (self.target_field is None):
            given, missing = ("source_field", "target_field") if self.target_field is None else (
                "target_field", "source_field")
            raise ValueError(f"@{missing}@ {given} needs {missing} too (a seq2seq pair reads both)")
        return self

    @property
    def pairs(self) -> bool:
        """Whether this data is (source, target) pairs (seq2seq) rather than text."""
        return self.source_field is not None


class JsonlData(_Records):
    """JSON lines: one JSON object per line, from a ``.jsonl`` file or every file of a folder."""

    type: Literal["jsonl"]


class ParquetData(_Records):
    """Parquet files (a file or a folder of ``.parquet`` files), read with pyarrow (extra ``data``)."""

    type: Literal["parquet"]


class HFDatasetData(_Records):
    """A Hugging Face dataset folder written by ``save_to_disk``; its Arrow files are read with pyarrow."""

    type: Literal["hf_dataset"]
    split: str | None = Field(None, min_length=1,
                              description="a DatasetDict folder: the split to read (default: train)")
