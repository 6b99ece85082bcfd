"""Model inputs for a run (SPEC §3): what each input is fed, decided and checked before any device time.

Either a user dataset (`model.dataset`, an .npz keyed by input name, checked from its headers without
loading it: names, shapes, dtypes, declared sizes), or generated inputs from the model's input specs and
`model.input_specs`: seeded random values, a constant (`value`, e.g. a sample rate) or a seeded uniform
`range`. A dynamic dimension other than the batch is never guessed: it needs `input_specs` or a dataset.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import InvalidInput, LimitExceeded

_DTYPES = {"float": "float32", "float32": "float32", "float16": "float16", "double": "float64",
           "float64": "float64", "int64": "int64", "int32": "int32", "int8": "int8", "uint8": "uint8",
           "bool": "bool"}
MAX_INPUT_BYTES = 500 * 1024 * 1024  # generated inputs or a dataset (declared sizes), like models (SPEC §3)
RANDOM_INT_RANGE = (0, 9)  # integers fed when no value or range is given


def _numpy_dtype(onnx_type: str, where: str = "") -> str:
    # ONNX Runtime reports "tensor(float)"; validators report plain names.
    name = onnx_type.removeprefix("tensor(").removesuffix(")")
    if name not in _DTYPES:
        prefix = f"{where}: " if where else ""
        raise InvalidInput(f"{prefix}input dtype {onnx_type!r} is not supported for generated inputs; "
                           "give model.dataset (an .npz) instead")
    return _DTYPES[name]


def _is_batch(index: int, dim) -> bool:
    return index == 0 or "batch" in str(dim).lower()


def resolve_shape(name: str, shape: list, specs: dict | None, source: str) -> list[int]:
    """The concrete shape fed to input `name`: input_specs' shape wins; a dynamic batch dimension becomes 1;
    any other dynamic dimension raises InvalidInput naming the input and the dimension."""
    spec = (specs or {}).get(name) or {}
    if "shape" in spec:
        return [int(d) for d in spec["shape"]]
    out = []
    for i, d in enumerate(shape):
        if isinstance(d, int) and d > 0:
            out.append(d)
        elif _is_batch(i, d):
            out.append(1)
        else:
            raise InvalidInput(
                f"{source}: $.model.input_specs.{name}: the model's input {name!r} has a dynamic dimension {i} "
                f"({d!r}) in its shape {shape}; EdgeGate will not guess its size",
                hint=f"give the shape to measure as model.input_specs.{name}.shape (a list of {len(shape)} "
                     "sizes), or give a model.dataset")
    return out


def _check_value(name: str, dtype: str, spec: dict, source: str) -> None:
    import numpy as np

    where = f"{source}: $.model.input_specs.{name}"
    values = [spec["value"]] if "value" in spec else list(spec.get("range") or [])
    for v in values:
        if dtype == "bool":
            if not isinstance(v, bool) and v not in (0, 1):
                raise InvalidInput(f"{where}: {v!r} is not a boolean for a bool input")
        elif dtype.startswith(("int", "uint")):
            if isinstance(v, bool) or not float(v).is_integer():
                raise InvalidInput(f"{where}: {v!r} is not an integer, and input {name!r} is {dtype}")
            info = np.iinfo(dtype)
            if not info.min <= int(v) <= info.max:
                raise InvalidInput(f"{where}: {v!r} does not fit {dtype} ({info.min}..{info.max})")
        elif isinstance(v, bool):
            raise InvalidInput(f"{where}: {v!r} is not a number, and input {name!r} is {dtype}")
    if "range" in spec and spec["range"][0] > spec["range"][1]:
        raise InvalidInput(f"{where}.range: {spec['range']} has its low end above its high end")


def plan_inputs(inputs: list, specs: dict | None, source: str) -> dict[str, dict]:
    """What each model input (TensorSpec-like) is fed: {name: {shape, dtype, fill}}, `fill` being "random",
    "value V" or "range [A, B]". Raises InvalidInput (a dynamic dimension, a value that does not fit the
    dtype) or LimitExceeded (more than 500 MiB of inputs)."""
    import numpy as np

    plan, total = {}, 0
    for tensor in inputs:
        spec = (specs or {}).get(tensor.name) or {}
        dtype = _numpy_dtype(spec.get("dtype") or tensor.dtype, f"{source}: $.model.input_specs.{tensor.name}")
        shape = resolve_shape(tensor.name, tensor.shape, specs, source)
        _check_value(tensor.name, dtype, spec, source)
        total += math.prod(shape) * np.dtype(dtype).itemsize
        if total > MAX_INPUT_BYTES:
            raise LimitExceeded(f"{source}: $.model.input_specs: generated inputs would take {total:,} bytes "
                                f"(input {tensor.name!r}: shape {shape}), over the limit of {MAX_INPUT_BYTES:,}")
        fill = (f"value {spec['value']}" if "value" in spec else
                f"range [{spec['range'][0]}, {spec['range'][1]}]" if "range" in spec else "random")
        plan[tensor.name] = {"shape": shape, "dtype": dtype, "fill": fill}
    return plan


def _array(rng, spec: dict, shape: list[int], dtype: str):
    import numpy as np

    if "value" in spec:
        return np.full(shape, spec["value"], dtype=dtype)
    if dtype == "bool":
        lo, hi = (int(v) for v in spec.get("range", (0, 1)))
        return rng.integers(lo, hi, shape, endpoint=True).astype(bool)
    if dtype.startswith(("int", "uint")):
        lo, hi = (int(v) for v in spec.get("range", RANDOM_INT_RANGE))
        return rng.integers(lo, hi, shape, endpoint=True).astype(dtype)
    if "range" in spec:
        lo, hi = (float(v) for v in spec["range"])
        return rng.uniform(lo, hi, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def generate_inputs(inputs: list, specs: dict | None, seed: int, out_path: Path, source: str) -> str:
    """Write an .npz of inputs for `inputs` (TensorSpec-like) as `plan_inputs` decides, from a fixed seed;
    return a description."""
    import numpy as np

    plan = plan_inputs(inputs, specs, source)
    rng = np.random.default_rng(seed)
    arrays = {name: _array(rng, (specs or {}).get(name) or {}, p["shape"], p["dtype"]) for name, p in plan.items()}
    np.savez(out_path, **arrays)
    return f"generated (seed {seed})"
