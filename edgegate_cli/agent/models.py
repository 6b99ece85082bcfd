"""ONNX Runtime sessions and the serving slot.

A release is loaded into a second session and warmed up while the first keeps serving; then the slot's
reference is exchanged under a lock. A request takes the reference once and runs on that session to
the end, so in-flight requests finish on the old model (ORT documents `run` as thread-safe). The
previous model stays loaded as the rollback target until the next swap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from .codes import AgentRefusal, Code

SERVED_FORMATS = ("onnx", "onnx_external", "aimet")  # what ONNX Runtime on the device can run
_DTYPES = {"float": "float32", "float16": "float16", "double": "float64", "int64": "int64", "int32": "int32",
           "int16": "int16", "int8": "int8", "uint8": "uint8", "bool": "bool"}


@dataclass
class LoadedModel:
    release: dict  # {name, version, sha256, manifest_sha256, dir, ...} as state.json records it
    session: object
    inputs: list = field(default_factory=list)  # [(name, numpy dtype, shape with None for dynamic dims)]

    @property
    def label(self) -> dict:
        return {"name": self.release["name"], "version": self.release["version"], "sha256": self.release["sha256"]}


def main_model_file(files: list[str]) -> str:
    """The file ONNX Runtime opens: the only `.onnx` file, else `model.onnx`. LOAD_FAILED otherwise."""
    onnx_files = [f for f in files if f.endswith(".onnx")]
    if len(onnx_files) == 1:
        return onnx_files[0]
    if "model.onnx" in onnx_files:
        return "model.onnx"
    raise AgentRefusal(Code.LOAD_FAILED, f"the release has {len(onnx_files)} .onnx files and none is model.onnx: "
                                         "which one to load is ambiguous")


def load_model(release: dict, model_path: Path, threads: int) -> LoadedModel:
    """A new ORT session for `model_path` (external data next to it). Raises AgentRefusal LOAD_FAILED."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        inputs = [(i.name, _numpy_dtype(i.type), [d if isinstance(d, int) and d > 0 else None for d in i.shape])
                  for i in session.get_inputs()]
    except AgentRefusal:
        raise
    except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, NoSuchFile, ...)
        raise AgentRefusal(Code.LOAD_FAILED, f"{release['name']} {release['version']}: ONNX Runtime cannot load "
                                             f"{model_path.name}: {_one_line(exc)}") from None
    return LoadedModel(release=release, session=session, inputs=inputs)


def _numpy_dtype(ort_type: str) -> str:
    name = ort_type.removeprefix("tensor(").removesuffix(")")
    if name not in _DTYPES:
        raise AgentRefusal(Code.LOAD_FAILED, f"input type {ort_type} is not supported by the agent")
    return _DTYPES[name]


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return "".join(c if c.isprintable() else "?" for c in text)[:300]


def warmup_feeds(model: LoadedModel, input_specs: dict | None) -> dict:
    """Deterministic inputs for warm-up: the release's input_specs shapes, else dynamic dims as 1."""
    import numpy as np

    rng = np.random.default_rng(0)
    feeds = {}
    for name, dtype, shape in model.inputs:
        dims = (input_specs or {}).get(name, {}).get("shape") or [d or 1 for d in shape]
        feeds[name] = (rng.standard_normal(dims) if dtype.startswith("float") else np.zeros(dims)).astype(dtype)
    return feeds


def warm_up(model: LoadedModel, count: int, feeds: dict, delay_s: float = 0.0) -> None:
    """Run `count` inferences (each after `delay_s`, the testing knob); any failure is LOAD_FAILED."""
    import time

    for i in range(count):
        time.sleep(delay_s)
        try:
            model.session.run(None, feeds)
        except Exception as exc:
            raise AgentRefusal(Code.LOAD_FAILED, f"{model.release['name']} {model.release['version']}: warm-up "
                                                 f"inference {i + 1} of {count} failed: {_one_line(exc)}") from None


def feeds_from_json(model: LoadedModel, inputs) -> dict:
    """{input name: nested list} -> numpy arrays of the model's input types. INVALID_REQUEST if they
    do not fit (a client's mistake is not counted as the model's error)."""
    import numpy as np

    names = [name for name, _, _ in model.inputs]
    if not isinstance(inputs, dict) or sorted(inputs) != sorted(names):
        raise AgentRefusal(Code.INVALID_REQUEST, f"inputs must be an object with exactly the model's inputs: "
                                                 f"{', '.join(names)}")
    feeds = {}
    for name, dtype, shape in model.inputs:
        try:
            array = np.asarray(inputs[name], dtype=dtype)
        except (ValueError, TypeError):
            raise AgentRefusal(Code.INVALID_REQUEST, f"inputs.{name} is not a rectangular array of "
                                                     f"{dtype}") from None
        if array.ndim != len(shape) or any(d is not None and d != n for d, n in zip(shape, array.shape, strict=True)):
            shown = ["?" if d is None else d for d in shape]
            raise AgentRefusal(Code.INVALID_REQUEST, f"inputs.{name} has shape {list(array.shape)}, the model "
                                                     f"takes {shown}")
        feeds[name] = array
    return feeds


def outputs_to_json(names: list[str], outputs: list) -> dict:
    """{name: {dtype, shape, data}}; non-finite floats become null (JSON has no NaN)."""
    import numpy as np

    result = {}
    for name, value in zip(names, outputs, strict=True):
        array = np.asarray(value)
        data = array.tolist()
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            data = np.where(np.isfinite(array), array, None).tolist()
        result[name] = {"dtype": str(array.dtype), "shape": list(array.shape), "data": data}
    return result


class Slot:
    """The serving reference: `active` serves, `previous` stays loaded as the rollback target."""

    def __init__(self):
        self._lock = threading.Lock()
        self.active: LoadedModel | None = None
        self.previous: LoadedModel | None = None

    def swap(self, new: LoadedModel) -> LoadedModel | None:
        """Make `new` serve; the old active becomes previous (the old previous is released). Returns it."""
        with self._lock:
            old, self.active = self.active, new
            self.previous = old
        return old

    def current(self) -> LoadedModel | None:
        with self._lock:
            return self.active
