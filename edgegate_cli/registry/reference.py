"""Reference data that travels with a release, so an agent can check output agreement on the device:
`inputs.npz` (keyed by model input name) and `outputs.npz` (keyed by output name), what this model
produces on those inputs with ONNX Runtime on CPU (one thread, so the same inputs give the same bytes).

The inputs are the run's own (the .npz the evidence was measured with, from this home's CAS) or
`--reference-data NPZ`. Only ONNX-based forms (onnx, onnx_external, aimet) can be run here.
`outputs.npz` is written deterministically (sorted entries, fixed dates), so publishing the same
release twice gives the same manifest bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from ..errors import InvalidInput

ONNX_FORMS = ("onnx", "onnx_external", "aimet")


@dataclass(frozen=True)
class Reference:
    inputs: bytes  # the .npz as given (exact bytes)
    outputs: bytes  # deterministic .npz of the model's outputs
    source: str  # "run <id>" or the --reference-data path
    input_specs: dict | None  # {name: {shape, dtype}} of the inputs, for the manifest


def _load_npz(data: bytes, where: str) -> dict:
    import numpy as np

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except Exception as exc:  # numpy raises several types for a bad archive (zip, format, pickle)
        raise InvalidInput(f"{where}: not a readable .npz of arrays ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:120] if str(exc) else 'unreadable'})") from None


def _npz_bytes(arrays: dict) -> bytes:
    """A .npz (a zip of .npy files, as np.savez writes) with sorted, stored, 1980-dated entries: the same
    arrays give the same bytes."""
    import zipfile

    import numpy as np

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, array in sorted(arrays.items()):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            zf.writestr(info, buf.getvalue())
    return out.getvalue()


def make_reference(model, inputs: bytes, *, source: str, where: str) -> Reference:
    """Run `model` (registry.model_files.ModelFiles) on the .npz `inputs`; return the Reference.

    Raises InvalidInput (naming `where`) when the model is not ONNX-based, the .npz is unreadable or
    lacks a model input, or the model refuses the inputs.
    """
    if model.form not in ONNX_FORMS or not model.onnx_path:
        raise InvalidInput(f"{where}: reference outputs need an ONNX model (this one is {model.form})",
                           hint="publish without --reference-data; the agent then skips the agreement check")
    arrays = _load_npz(inputs, where)
    names = [t.name for t in model.inputs]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InvalidInput(f"{where}: lacks model input(s) {', '.join(missing)} (it has "
                           f"{', '.join(sorted(arrays)) or 'nothing'})", hint="key the .npz by model input name")
    feeds = {n: arrays[n] for n in names}
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.onnx_path, sess_options=opts, providers=["CPUExecutionProvider"])
        output_names = [o.name for o in session.get_outputs()]
        results = session.run(output_names, feeds)
    except Exception as exc:  # onnxruntime raises its own types (InvalidArgument, Fail, ...)
        raise InvalidInput(f"{where}: the model refused these inputs ({str(exc).splitlines()[0][:160]})") from None
    specs = {n: {"shape": [int(d) for d in a.shape], "dtype": str(a.dtype)} for n, a in feeds.items()}
    if not all(d > 0 for s in specs.values() for d in s["shape"]):
        specs = None
    return Reference(inputs=inputs, outputs=_npz_bytes(dict(zip(output_names, results, strict=True))),
                     source=source, input_specs=specs or None)
