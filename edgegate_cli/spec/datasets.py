"""User datasets (`model.dataset`, `model.reference_outputs`): .npz archives checked from their zip directory
and .npy headers alone, before anything is loaded. An .npz is a zip: a 1 MB file may declare gigabytes, so
the declared sizes are limited first (like models, SPEC §3), and each array's header must agree with the
size declared for it. A dataset must hold exactly the model's inputs, each with a shape and dtype the model
accepts; otherwise the run would fail on the device after spending its time.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

from ..errors import InvalidInput, LimitExceeded
from ..files import require_regular
from .inputs import MAX_INPUT_BYTES, _numpy_dtype

MAX_ARRAYS = 1000


def read_npz_headers(path: Path | str, where: str, *, max_bytes: int = MAX_INPUT_BYTES) -> dict[str, dict]:
    """{array name: {shape, dtype}} of an .npz, read from its zip directory and .npy headers only.

    Raises InvalidInput (not a regular file, not an .npz, an object/pickled array, a header that disagrees
    with its declared size) or LimitExceeded (more than `max_bytes` declared, or too many arrays).
    """
    import numpy as np

    require_regular(path, where=where)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ARRAYS:
                raise LimitExceeded(f"{where}: {path}: {len(infos):,} arrays, over the limit of {MAX_ARRAYS:,}")
            declared = sum(i.file_size for i in infos)
            if declared > max_bytes:
                raise LimitExceeded(f"{where}: {path}: its arrays declare {declared:,} bytes, over the limit of "
                                    f"{max_bytes:,} bytes", hint="use a smaller dataset")
            arrays = {}
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise InvalidInput(f"{where}: {path}: entry {info.filename!r} is not an .npy array")
                with zf.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _fortran, dtype = read_header(member)
                if dtype.hasobject:
                    raise InvalidInput(f"{where}: {path}: array {info.filename[:-4]!r} holds Python objects "
                                       "(pickles are never loaded)")
                if math.prod(shape) * dtype.itemsize > info.file_size:
                    raise InvalidInput(f"{where}: {path}: array {info.filename[:-4]!r} declares shape {list(shape)} "
                                       f"but its entry holds only {info.file_size:,} bytes")
                arrays[info.filename[:-4]] = {"shape": list(shape), "dtype": dtype.name}
            return arrays
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise InvalidInput(f"{where}: {path}: not a readable .npz ({type(exc).__name__}: {str(exc)[:120]})") from None


def _fits(model_shape: list, shape: list[int]) -> bool:
    return len(model_shape) == len(shape) and all(
        not (isinstance(m, int) and m > 0) or m == s for m, s in zip(model_shape, shape, strict=True))


def check_dataset(inputs: list, dataset: str, source: str) -> tuple[str, dict[str, dict]]:
    """Check a user .npz against the model's inputs (TensorSpec-like): every input present, no other array,
    each shape fitting the model's (fixed dimensions equal) and each dtype the model's. Returns a description
    and {name: {shape, dtype, fill: "dataset"}}. Raises InvalidInput / LimitExceeded naming the array."""
    where = f"{source}: $.model.dataset"
    arrays = read_npz_headers(dataset, where)
    names = {t.name for t in inputs}
    missing = sorted(names - set(arrays))
    if missing:
        raise InvalidInput(f"{where}: {dataset} lacks input(s) {', '.join(missing)} "
                           f"(it has {', '.join(sorted(arrays)) or 'nothing'})")
    extra = sorted(set(arrays) - names)
    if extra:
        raise InvalidInput(f"{where}: {dataset} has array(s) {', '.join(extra)} that the model has no input for "
                           f"(inputs: {', '.join(sorted(names))})")
    for tensor in inputs:
        got = arrays[tensor.name]
        want = _numpy_dtype(tensor.dtype, where)
        if got["dtype"] != want:
            raise InvalidInput(f"{where}: {dataset}: array {tensor.name!r} is {got['dtype']}, the model's input "
                               f"is {want}")
        if not _fits(tensor.shape, got["shape"]):
            raise InvalidInput(f"{where}: {dataset}: array {tensor.name!r} has shape {got['shape']}, which does not "
                               f"fit the model's input shape {tensor.shape}")
    tensors = {name: {**a, "fill": "dataset"} for name, a in sorted(arrays.items())}
    return f"dataset {Path(dataset).name}", tensors
