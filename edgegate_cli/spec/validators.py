"""Model validation before any device time is spent (SPEC §3): which form a model is, and is it sound.

`validate_model(path)` returns a `ModelInfo` or raises `InvalidInput` / `LimitExceeded` with one line
naming the file and what to do. ONNX graph checks live in `onnx_checks.py`.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

from ..errors import InvalidInput, LimitExceeded
from .model_info import Form, ModelInfo, TensorSpec

MAX_MODEL_BYTES = 500 * 1024 * 1024  # SPEC §3: model ≤ 500 MB, the sum of its files
ACCEPTED_FORMS = ("a .onnx file, a directory with one .onnx and one .data (ONNX external weights), "
                  "a *.aimet directory (one .onnx + one .encodings), a TorchScript .pt/.pth, "
                  "a .tflite file, or an onnxruntime-genai folder (with genai_config.json)")

def validate_model(path: Path | str, input_specs: dict | None = None, *,
                   max_bytes: int = MAX_MODEL_BYTES) -> ModelInfo:
    """Detect the form of the model at `path`, check its size, then check it as SPEC §3 says.

    `input_specs` ({name: {shape, dtype?}}) is required for TorchScript and checked against ONNX inputs.
    Returns a ModelInfo. Raises InvalidInput (missing, unsupported, malformed) or LimitExceeded (size),
    the size being checked before anything is parsed.
    """
    from ..files import kind_of, stat_path

    p = Path(path)
    st = stat_path(p)
    if st is None:
        raise InvalidInput(f"{p}: no such file or directory", path=str(p))
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise InvalidInput(f"{p}: is {kind_of(st.st_mode)}; a model is a regular file or a directory", path=str(p))
    form = _detect_form(p)
    files = _list_files(p)
    total = sum((p / f).stat().st_size for f in files) if p.is_dir() else p.stat().st_size
    if total > max_bytes:
        raise LimitExceeded(f"{p}: model is {_mb(total)} ({total} bytes), over the limit of {_mb(max_bytes)} "
                            f"({max_bytes} bytes)", path=str(p),
                            hint="reduce the model (quantize or prune it); the limit is the sum of its files")
    info = ModelInfo(form=form, path=str(p), files=files, total_bytes=total)
    if form in ("onnx", "onnx_external", "aimet"):
        from .onnx_checks import check_onnx_form

        return check_onnx_form(info, input_specs)
    if form == "genai":
        from .genai_checks import check_genai_folder

        return check_genai_folder(info)
    if form == "torchscript":
        _check_torchscript(p)
    else:
        _check_tflite(p)
    return info.model_copy(update={"inputs": _specs_to_tensors(p, input_specs, required=form == "torchscript")})


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def _detect_form(p: Path) -> Form:
    if p.is_dir():
        if (p / "genai_config.json").is_file():
            return "genai"
        if p.name.endswith(".aimet"):
            return "aimet"
        if any(c.suffix == ".onnx" for c in p.iterdir()):
            return "onnx_external"
    else:
        suffix = p.suffix.lower()
        forms: dict[str, Form] = {".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript",
                                  ".tflite": "tflite"}
        if suffix in forms:
            return forms[suffix]
    raise InvalidInput(f"{p}: unsupported model form; accepted: {ACCEPTED_FORMS}", path=str(p))


def _list_files(p: Path) -> list[str]:
    """Every file under a directory (sorted, relative), or the file's own name. Anything but regular files
    and directories (a FIFO would block the reader forever) is refused."""
    from ..files import kind_of

    if not p.is_dir():
        return [p.name]
    files = []
    try:
        for f in p.rglob("*"):
            mode = f.stat().st_mode
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise InvalidInput(f"{f}: is {kind_of(mode)}; a model directory holds only regular files", path=str(f))
            files.append(f.relative_to(p).as_posix())
    except OSError as exc:
        from ..files import path_error

        raise path_error(p, exc) from None
    return sorted(files)


def _check_torchscript(p: Path) -> None:
    # A TorchScript archive is a zip whose single top folder holds code/ (the compiled methods),
    # constants.pkl and data.pkl; a torch.save() zip has data.pkl but no code/ or constants.pkl.
    if not zipfile.is_zipfile(p):
        raise InvalidInput(f"{p}: not a TorchScript archive (not a zip file); save the model with "
                           "torch.jit.save(torch.jit.script(model), path)", path=str(p))
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"{p}: not a TorchScript archive (unreadable zip: {exc})", path=str(p)) from None
    inner = {n.split("/", 1)[1] for n in names if "/" in n}
    has_code = any(n.startswith("code/") for n in inner)
    if not (has_code and "constants.pkl" in inner and "data.pkl" in inner):
        raise InvalidInput(f"{p}: not a TorchScript archive (no code/, constants.pkl and data.pkl entries); "
                           "save the model with torch.jit.save(torch.jit.script(model), path), "
                           "not torch.save", path=str(p))


def _check_tflite(p: Path) -> None:
    with p.open("rb") as f:
        head = f.read(8)
    if head[4:8] != b"TFL3":
        raise InvalidInput(f"{p}: not a TFLite model: bytes 4-8 are {head[4:8]!r}, expected b'TFL3' "
                           "(the flatbuffer file identifier)", path=str(p))


def _specs_to_tensors(p: Path, specs: dict | None, *, required: bool) -> list[TensorSpec]:
    if not specs:
        if required:
            raise InvalidInput(f"{p}: a TorchScript model does not record its input shapes; add "
                               "model.input_specs to the pipeline, e.g. "
                               "input_specs: {x: {shape: [1, 3, 224, 224], dtype: float32}}", path=str(p))
        return []
    for name, spec in specs.items():
        if "shape" not in spec:
            raise InvalidInput(f"{p}: model.input_specs.{name}: no shape; this model form does not record its input "
                               "shapes, so every input needs one", path=str(p))
    return [TensorSpec(name=name, shape=list(spec["shape"]), dtype=spec.get("dtype") or "float32")
            for name, spec in specs.items()]
