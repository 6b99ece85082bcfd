"""A model as a release names it: its form, its files (relative POSIX path, sha256, size) and its identity.

The identity is `canonical.model_identity`, the rule `run` uses: a one-file model's own sha256, or for
a directory the sha256 of the canonical manifest {relative path: hex sha256}. The manifest's
`model.files` lists exactly those paths, so `identity_of(files, format)` recomputes the identity from
a manifest alone (`releases verify` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..canonical import file_sha256, model_identity, tag, untag

SINGLE_FILE_FORMS = ("onnx", "tflite", "torchscript")  # the others are directories


@dataclass(frozen=True)
class ModelFiles:
    path: Path
    form: str
    files: list[dict]  # [{"path", "sha256": "sha256:<hex>", "size"}] in path order
    identity: str  # "sha256:<hex>"
    onnx_path: str | None  # the .onnx to load, for ONNX-based forms
    inputs: list  # spec.model_info.TensorSpec of the model's inputs (ONNX forms; else from input_specs)
    total_bytes: int

    def source_of(self, relative: str) -> Path:
        """The file on disk behind a manifest path."""
        return self.path if self.path.is_file() else self.path / relative


def identity_of(files: list[dict] | tuple, model_format: str) -> str:
    """The identity digest ("sha256:<hex>") a manifest's files imply, by the rule `run` uses."""
    digests = {_get(f, "path"): untag(_get(f, "sha256")) for f in files}
    return tag(model_identity(digests, single_file=model_format in SINGLE_FILE_FORMS and len(digests) == 1))


def _get(entry, key: str):
    return entry[key] if isinstance(entry, dict) else getattr(entry, key)


def describe_model(path: Path | str) -> ModelFiles:
    """Validate the model at `path` (spec.validators: form, size, graph) and hash its files, streamed.

    Raises InvalidInput / LimitExceeded as `validate_model` does.
    """
    from ..spec.validators import validate_model

    info = validate_model(path)
    root = Path(path)
    names = [root.name] if root.is_file() else sorted(info.files)
    files = []
    for name in names:
        source = root if root.is_file() else root / name
        files.append({"path": name, "sha256": tag(file_sha256(source)), "size": source.stat().st_size})
    return ModelFiles(path=root, form=info.form, files=files, identity=identity_of(files, info.form),
                      onnx_path=info.onnx_path, inputs=list(info.inputs), total_bytes=info.total_bytes)
