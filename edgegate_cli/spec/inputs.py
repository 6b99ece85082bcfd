"""Model inputs for a run: generated from the model's input specs with a fixed seed, or a user .npz."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInput

_DTYPES = {"float": "float32", "float32": "float32", "float16": "float16", "double": "float64",
           "int64": "int64", "int32": "int32", "int8": "int8", "uint8": "uint8", "bool": "bool"}


def _numpy_dtype(onnx_type: str) -> str:
    # ONNX Runtime reports "tensor(float)"; validators report plain names.
    name = onnx_type.removeprefix("tensor(").removesuffix(")")
    if name not in _DTYPES:
        raise InvalidInput(f"input dtype {onnx_type!r} is not supported for generated inputs; "
                           "give model.dataset (an .npz) instead")
    return _DTYPES[name]


def resolve_shape(name: str, shape: list, specs: dict | None, source: str) -> list[int]:
    """Concrete shape: the pipeline's input_specs win; otherwise dynamic dimensions become 1."""
    if specs and name in specs:
        return [int(d) for d in specs[name]["shape"]]
    return [d if isinstance(d, int) and d > 0 else 1 for d in shape]


def generate_inputs(inputs: list, specs: dict | None, seed: int, out_path: Path, source: str) -> str:
    """Write an .npz of seeded random inputs for `inputs` (TensorSpec-like); return a description."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in inputs:
        dtype = _numpy_dtype((specs or {}).get(spec.name, {}).get("dtype") or spec.dtype)
        shape = resolve_shape(spec.name, spec.shape, specs, source)
        if dtype.startswith("float"):
            arrays[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == "bool":
            arrays[spec.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            arrays[spec.name] = rng.integers(0, 10, shape).astype(dtype)
    np.savez(out_path, **arrays)
    return f"generated (seed {seed})"


def check_dataset(inputs: list, dataset: str, source: str) -> str:
    """Check a user .npz names every model input; return a description."""
    import numpy as np

    try:
        with np.load(dataset) as data:
            names = set(data.files)
    except FileNotFoundError:
        raise InvalidInput(f"{source}: $.model.dataset: {dataset}: no such file") from None
    except Exception as exc:  # numpy raises several types for a bad archive
        raise InvalidInput(f"{source}: $.model.dataset: {dataset}: not a readable .npz ({exc})") from None
    missing = sorted(s.name for s in inputs if s.name not in names)
    if missing:
        raise InvalidInput(f"{source}: $.model.dataset: {dataset} lacks input(s) {', '.join(missing)} "
                           f"(it has {', '.join(sorted(names)) or 'nothing'})")
    return f"dataset {Path(dataset).name}"
