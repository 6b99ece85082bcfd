"""What validation learns about a model (its form, files, tensors) and the input_specs check shared by the
form checkers; a module of its own so `validators` and `onnx_checks` need not import each other."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from ..errors import InvalidInput

Form = Literal["onnx", "onnx_external", "aimet", "torchscript", "tflite", "genai"]


class TensorSpec(BaseModel):
    name: str
    shape: list[int | str]  # a str is a symbolic (dynamic) dimension; "?" when unnamed
    dtype: str  # numpy-style name: float32, int64, bool, ...


class ModelInfo(BaseModel):
    form: Form
    path: str
    files: list[str]  # relative to `path` for a directory, else the file name
    total_bytes: int
    onnx_path: str | None = None  # the .onnx to load, for ONNX-based forms
    opset: int | None = None
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    context_length: int | None = None  # GenAI folders: the model's maximum sequence length


def check_input_specs(onnx_file: Path, inputs: list[TensorSpec], specs: dict | None) -> None:
    """Raise InvalidInput unless every input_specs entry names a model input and fits its shape
    (same rank, same fixed dimensions; a dynamic dimension takes any size)."""
    by_name = {t.name: t for t in inputs}
    for name, spec in (specs or {}).items():
        where = f"{onnx_file}: model.input_specs.{name}"
        if name not in by_name:
            raise InvalidInput(f"{where}: the model has no input {name!r} (inputs: {', '.join(by_name)})",
                               path=str(onnx_file))
        if "shape" not in spec:
            continue  # a value or range alone: the model's own shape is fed
        want, have = list(spec["shape"]), by_name[name].shape
        fixed_clash = any(isinstance(h, int) and h > 0 and w != h for w, h in zip(want, have, strict=False))
        if len(want) != len(have) or fixed_clash:
            raise InvalidInput(f"{where}: shape {want} does not fit the model's input shape {have}",
                               path=str(onnx_file))
        if spec.get("dtype") and spec["dtype"] != by_name[name].dtype:
            raise InvalidInput(f"{where}: dtype {spec['dtype']} differs from the model's input dtype "
                               f"{by_name[name].dtype}", path=str(onnx_file))
