"""ONNX-based model forms (plain, external weights, AIMET): layout, graph, opset and I/O checks.

Called by `validators.validate_model` once the form is known and the size is within the limit.
`onnx` is imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..errors import InvalidInput
from .model_info import ModelInfo, TensorSpec, check_input_specs

MIN_OPSET = 7  # the oldest ai.onnx opset ONNX Runtime runs


def check_onnx_form(info: ModelInfo, input_specs: dict | None) -> ModelInfo:
    """Check an onnx / onnx_external / aimet model; return `info` with onnx_path, opset and I/O filled."""
    import onnx

    p = Path(info.path)
    onnx_file = p if info.form == "onnx" else p / _one(p, info.files, ".onnx", info.form)
    model = _load(onnx_file)
    refs = _external_refs(model, onnx_file)
    if info.form == "onnx" and refs:
        raise InvalidInput(f"{p}: stores weights in external file(s) {', '.join(sorted(refs))}; pass the "
                           "directory holding the .onnx and its .data instead", path=str(p))
    if info.form != "onnx":
        _check_refs_exist(p, onnx_file.name, refs)
    if info.form == "onnx_external":
        _check_external_layout(p, info.files, onnx_file.name, refs)
    if info.form == "aimet":
        _check_encodings(p / _one(p, info.files, ".encodings", "aimet"), model, onnx_file.name)
    try:
        onnx.checker.check_model(str(onnx_file))  # the path form also checks external data files
    except Exception as exc:  # onnx raises ValidationError and C++ errors
        raise InvalidInput(f"{onnx_file}: not a valid ONNX model: {_short(exc)}", path=str(onnx_file)) from None
    inputs, outputs = _io(model, onnx_file)
    check_input_specs(onnx_file, inputs, input_specs)
    return info.model_copy(update={"onnx_path": str(onnx_file), "opset": _opset(model, onnx_file),
                                   "inputs": inputs, "outputs": outputs})


def _short(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _one(p: Path, files: list[str], suffix: str, form: str) -> str:
    found = [f for f in files if f.endswith(suffix) and "/" not in f]
    if len(found) != 1:
        need = "one .onnx and one .data" if form == "onnx_external" else "one .onnx and one .encodings"
        raise InvalidInput(f"{p}: expected exactly {need} file, found {len(found)} {suffix} "
                           f"({', '.join(files) or 'empty directory'})", path=str(p))
    return found[0]


def _load(onnx_file: Path):
    import onnx

    try:
        return onnx.load(str(onnx_file), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, onnx errors, OSError
        raise InvalidInput(f"{onnx_file}: not a valid ONNX model: {_short(exc)}", path=str(onnx_file)) from None


def _graphs(graph):
    """The graph and every subgraph (If/Loop bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                yield from _graphs(sub)


def _tensors(model):
    for g in _graphs(model.graph):
        yield from g.initializer
        for sp in g.sparse_initializer:
            yield from (sp.values, sp.indices)
        for node in g.node:
            for attr in node.attribute:
                yield from ([attr.t] if attr.HasField("t") else list(attr.tensors))


def _external_refs(model, onnx_file: Path) -> dict[str, list]:
    """{location: [(tensor name, offset, length)]} for external tensors; refuses paths leaving the dir."""
    import onnx

    refs: dict[str, list] = {}
    for t in _tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entry = {e.key: e.value for e in t.external_data}
        loc = entry.get("location", "")
        parts = loc.replace("\\", "/").split("/")
        if not loc or PurePosixPath(loc).is_absolute() or PureWindowsPath(loc).anchor or ".." in parts:
            raise InvalidInput(f"{onnx_file}: tensor {t.name!r} has external data location {loc!r}, which "
                               "leaves the model directory; keep the .data beside the .onnx and reference "
                               "it by file name", path=str(onnx_file))
        offset = int(entry.get("offset", 0))
        length = int(entry["length"]) if "length" in entry else None
        refs.setdefault(loc, []).append((t.name, offset, length))
    return refs


def _check_refs_exist(p: Path, onnx_name: str, refs: dict) -> None:
    for loc in sorted(refs):
        if not (p / loc).is_file():
            raise InvalidInput(f"{p / onnx_name}: references external data file {loc!r}, which is missing "
                               f"from {p}", path=str(p))


def _check_external_layout(p: Path, files: list[str], onnx_name: str, refs: dict) -> None:
    data = [f for f in files if f.endswith(".data")]
    if len(data) != 1 or len(files) != 2 or any((p / f).is_symlink() for f in files):
        raise InvalidInput(f"{p}: expected exactly one .onnx and one .data file (no others, no symlinks), "
                           f"found: {', '.join(files)}", path=str(p))
    if set(refs) != {data[0]}:
        what = ", ".join(sorted(refs)) if refs else "no external data"
        raise InvalidInput(f"{p / onnx_name}: references {what}; expected only {data[0]}", path=str(p))
    size = (p / data[0]).stat().st_size
    for name, offset, length in refs[data[0]]:
        if offset + (length or 0) > size:
            raise InvalidInput(f"{p / onnx_name}: tensor {name!r} reads bytes {offset}-{offset + (length or 0)} "
                               f"of {data[0]}, which has only {size} bytes", path=str(p))


def _check_encodings(enc_file: Path, model, onnx_name: str) -> None:
    """AIMET encodings: JSON, keyed by tensor name (format 0.6.x) or a list of {name} (1.x)."""
    try:
        doc = json.loads(enc_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{enc_file}: malformed encodings JSON: {_short(exc)}", path=str(enc_file)) from None
    sections = [k for k in ("activation_encodings", "param_encodings") if isinstance(doc, dict) and k in doc]
    if not sections:
        raise InvalidInput(f"{enc_file}: not AIMET encodings: expected an object with activation_encodings "
                           "and/or param_encodings", path=str(enc_file))
    known = {n for g in _graphs(model.graph) for n in _names(g)}
    for key in sections:
        section = doc[key]
        if isinstance(section, dict):
            names = list(section)
        elif isinstance(section, list) and all(isinstance(e, dict) and "name" in e for e in section):
            names = [e["name"] for e in section]
        else:
            raise InvalidInput(f"{enc_file}: $.{key}: expected an object keyed by tensor name or a list of "
                               "{name, ...} entries", path=str(enc_file))
        unknown = [n for n in names if n not in known]
        if unknown:
            shown = ", ".join(repr(n) for n in unknown[:3]) + (f" and {len(unknown) - 3} more"
                                                               if len(unknown) > 3 else "")
            raise InvalidInput(f"{enc_file}: $.{key}: names tensor(s) not in the graph of {onnx_name}: {shown}; "
                               "re-export the encodings with the model", path=str(enc_file))


def _names(g):
    yield from (v.name for v in (*g.input, *g.output, *g.value_info, *g.initializer))
    for node in g.node:
        yield from node.input
        yield from node.output


def _opset(model, onnx_file: Path) -> int:
    import onnx

    # onnx.checker has already refused a model that imports no ai.onnx opset.
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= versions[0] <= newest:
        raise InvalidInput(f"{onnx_file}: opset {versions[0]} is outside the supported range "
                           f"{MIN_OPSET}-{newest}; convert it with onnx.version_converter", path=str(onnx_file))
    return versions[0]


def _io(model, onnx_file: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    # onnx.checker has already required a name and a shape on every main-graph input and output.
    init = {t.name for t in model.graph.initializer}  # older exporters list weights as inputs
    inputs = [v for v in model.graph.input if v.name not in init]
    for kind, values in (("input", inputs), ("output", list(model.graph.output))):
        if not values:
            raise InvalidInput(f"{onnx_file}: the graph has no {kind}s", path=str(onnx_file))
        for v in values:
            if not v.type.HasField("tensor_type"):
                raise InvalidInput(f"{onnx_file}: graph {kind} {v.name!r} is not a tensor; EdgeGate measures "
                                   "models whose inputs and outputs are tensors", path=str(onnx_file))
    return [_spec(v) for v in inputs], [_spec(v) for v in model.graph.output]


def _spec(v) -> TensorSpec:
    import onnx

    tt = v.type.tensor_type
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
    except Exception:  # no numpy equivalent (e.g. bfloat16 without ml_dtypes): use ONNX's own name
        dtype = onnx.TensorProto.DataType.Name(tt.elem_type).lower()
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
    return TensorSpec(name=v.name, shape=shape, dtype=dtype)
