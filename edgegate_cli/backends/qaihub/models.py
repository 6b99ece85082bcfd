"""Models and data on AI Hub for the qaihub backend: upload once per sha256, compile once per (sha256,
device, options, SDK and toolchain version), the input dataset, and the agreement of AI Hub's outputs with
references.

Cached ids are checked before use (one `get_model` GET): a model deleted on AI Hub, or one that belongs
to another account, is uploaded or compiled again instead of failing the job.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...canonical import file_sha256, model_identity
from ...errors import CollectionFailed, EdgeGateError
from .jobs import backend_error, is_auth_error, sdk_errors, submit_with_retry

COMPILE_OPTIONS = "--target_runtime qnn_dlc"  # QNN runs on every Snapdragon device AI Hub offers


def model_digest(path: Path | str) -> str:
    """A model's identity digest (canonical.model_identity) from its files on disk, as `run` records it."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    files = {p.name: file_sha256(p) for p in sorted(path.iterdir()) if p.is_file()}
    return model_identity(files, single_file=False)


def sdk_input_specs(specs: dict | None) -> dict | None:
    """Pipeline input_specs ({x: {shape, dtype}}) in the SDK's form ({x: ((1, 8), "float32")})."""
    if not specs:
        return None
    return {name: (tuple(int(d) for d in s["shape"]), s.get("dtype") or "float32") for name, s in specs.items()}


def compile_options_key(specs: dict | None) -> str:
    """What the compile cache is keyed on besides model, device and SDK: the options and input specs."""
    return COMPILE_OPTIONS + (" input_specs=" + json.dumps(specs, sort_keys=True) if specs else "")


def existing_model(backend, model_id: str):
    """The AI Hub Model `model_id`, or None if AI Hub no longer knows it (deleted, another account)."""
    import qai_hub

    try:
        return backend.client.get_model(model_id)
    except qai_hub.UserError as exc:
        if is_auth_error(exc):
            raise backend_error(exc, backend.settings, "reading a model") from None
        return None
    except sdk_errors() as exc:
        raise backend_error(exc, backend.settings, f"reading model {model_id}") from None


def source_model(backend, path: str, sha256: str, progress, deadline: float | None = None):
    """The uploaded model for these bytes: the cached AI Hub id if it still exists, else a new upload."""
    with backend.upload_lock:
        if sha256 in backend.failed_uploads:  # another device of this run already tried, and failed
            raise backend.failed_uploads[sha256]
        cached = backend.cache.model_id(sha256)
        model = existing_model(backend, cached) if cached else None
        if model is not None:
            return model
        if cached:
            backend.cache.drop_model(sha256)
        progress(f"uploading {Path(path).name} to AI Hub")
        try:
            model = submit_with_retry(lambda: backend.client.upload_model(path, name=Path(path).name),
                                      f"{Path(path).name}: upload", backend.settings, progress, deadline=deadline)
        except EdgeGateError as err:
            backend.failed_uploads[sha256] = err
            raise
        backend.cache.put_model(sha256, model.model_id)
        return model


def start_compile(backend, path: str, sha256: str, specs: dict | None, device: str, progress, name: str,
                  form: str = "onnx", *, deadline: float | None = None, use_cache: bool = True):
    """(compiled model, None) from the cache, or (None, compile job) just submitted.

    A TFLite model runs as uploaded (AI Hub compiles ONNX, AIMET and TorchScript, not TFLite). Without
    `use_cache` the cached compile is dropped and the model compiled again (it failed on the device).
    """
    from .submit import find_job

    if form == "tflite":
        return source_model(backend, path, sha256, progress, deadline), None
    key = compile_key(backend, sha256, device, specs)
    cached = backend.cache.target_model_id(*key)
    if cached and not use_cache:
        backend.cache.drop_compiled(*key)
    elif cached:
        target = existing_model(backend, cached)
        if target is not None:
            progress(f"{device}: compiled model {cached} (cached)")
            return target, None
        backend.cache.drop_compiled(*key)
    model = source_model(backend, path, sha256, progress, deadline)
    job = submit_with_retry(lambda: compile_call(backend, model, device, specs, name), f"{device}: compile job",
                            backend.settings, progress, deadline=deadline,
                            find=lambda: find_job(backend.client, name, device, compile_job=True))
    progress(f"{device}: compile job {job.job_id} submitted")
    return None, job


def compile_key(backend, sha256: str, device: str, specs: dict | None) -> tuple:
    """The compile cache key: model, device, options and input specs, and the SDK and toolchain versions
    (AI Hub's default QAIRT: when AI Hub moves on, cached compiles are not reused)."""
    return sha256, device, compile_options_key(specs), backend.toolchain_key


def compile_call(backend, model, device: str, specs: dict | None, name: str):
    """Submit one compile job (no retries of EdgeGate's own: see submit_with_retry)."""
    from qai_hub.client import Device

    return backend.client.submit_compile_job(model, Device(name=device), name=name, options=COMPILE_OPTIONS,
                                             input_specs=sdk_input_specs(specs), retry=False)


def finish_compile(backend, sha256: str, specs: dict | None, device: str, job):
    """The target model of a successful compile job, recorded in the cache."""
    target = job.get_target_model()
    if target is None:  # the SDK's answer when AI Hub seeded no target model (a legacy server)
        raise CollectionFailed(f"{device}: AI Hub compile job {job.job_id} succeeded but names no compiled model",
                               hint=f"see {job.url}; rerun, and tell AI Hub support if it repeats")
    backend.cache.put_compiled(*compile_key(backend, sha256, device, specs), compile_job_id=job.job_id,
                               target_model_id=target.model_id)
    return target


def load_entries(inputs_path: str) -> dict:
    """An .npz of inputs as the SDK's dataset entries, {name: [array]}, in the file's order."""
    import numpy as np

    with np.load(inputs_path) as data:
        return {name: [np.ascontiguousarray(data[name])] for name in data.files}


def input_dataset(backend, inputs_path: str, progress):
    """The inputs uploaded once per run as an AI Hub dataset (shared by every device's inference job)."""
    with backend.upload_lock:
        if inputs_path not in backend.datasets:
            entries = load_entries(inputs_path)
            backend.datasets[inputs_path] = submit_with_retry(
                lambda: backend.client.upload_dataset(entries, name="edgegate-inputs"), "inputs: dataset upload",
                backend.settings, progress)
        return backend.datasets[inputs_path]


def agreement(outputs: dict, reference: dict) -> dict:
    """Cosine and max abs error of AI Hub's outputs ({name: [array]}) against reference arrays.

    Outputs are matched by name; when no name matches (compilers rename tensors) and both sides have
    the same number of outputs, by position. Returns {"compared": []} plus a note when nothing matches.
    """
    import numpy as np

    pairs = [(n, n) for n in reference if n in outputs]
    if not pairs and len(reference) == len(outputs):
        pairs = list(zip(reference, outputs, strict=True))
    cosines, errors, compared = [], [], []
    for ref_name, out_name in pairs:
        a = np.concatenate([np.asarray(x, np.float64).ravel() for x in outputs[out_name]])
        b = np.asarray(reference[ref_name], np.float64).ravel()
        if a.shape != b.shape:
            return {"compared": [], "note": f"output {out_name!r} has {a.size} values, reference {ref_name!r} "
                                            f"{b.size}"}
        denom = float(np.linalg.norm(a) * np.linalg.norm(b))
        cosines.append(float(a @ b) / denom if denom else float(np.array_equal(a, b)))
        errors.append(float(np.max(np.abs(a - b))) if a.size else 0.0)
        compared.append(ref_name if ref_name == out_name else f"{ref_name}={out_name}")
    if not compared:
        return {"compared": [], "note": f"no output named like a reference ({', '.join(reference)}); "
                                        f"AI Hub returned {', '.join(outputs)}"}
    return {"cosine": min(cosines), "max_abs_err": max(errors), "compared": compared}
