"""What a run runs and feeds: the model's files stored in the CAS, and its inputs (a seeded or user
.npz, or for a GenAI model its PromptPack)."""

from __future__ import annotations

from pathlib import Path

from ..canonical import model_manifest
from ..spec.pipeline import Pipeline
from ..store.artifacts import store_bytes, store_file
from ..store.workspace import Workspace


def ingest_model(ws: Workspace, info) -> tuple[str, dict]:
    """Store the model's files in the CAS; return (model sha256, model description)."""
    root = Path(info.path)
    if root.is_file():
        digest = store_file(ws.db, ws.cas, root, "model")
        files = {root.name: digest}
    else:
        files = {name: store_file(ws.db, ws.cas, root / name, "model", name) for name in sorted(info.files)}
        # A directory model is identified by the hash of its manifest (canonical.model_identity).
        digest = store_bytes(ws.db, ws.cas, model_manifest(files), "model_manifest", root.name + ".manifest.json")
    return digest, {"name": root.name, "sha256": digest, "form": info.form, "bytes": info.total_bytes,
                    "files": files}


def _prepare_inputs(pipeline: Pipeline, info, tmp: Path) -> tuple[str, str]:
    from ..spec.inputs import check_dataset, generate_inputs

    if pipeline.model.dataset:
        return pipeline.model.dataset, check_dataset(info.inputs, pipeline.model.dataset, pipeline.source)
    path = tmp / "inputs.npz"
    return str(path), generate_inputs(info.inputs, pipeline.model.input_specs, pipeline.run_policy.seed,
                                      path, pipeline.source)


def model_inputs(ws: Workspace, pipeline: Pipeline, info, pack, tmp: Path) -> tuple[str | None, dict]:
    """What the model is fed: an .npz (stored in the CAS), or for GenAI the PromptPack."""
    from ..store.cas import untag

    if pack is not None:
        return None, {"source": f"promptpack {pack.pack_id}@{pack.version}", "sha256": untag(pack.sha256)}
    inputs_path, inputs_desc = _prepare_inputs(pipeline, info, tmp)
    return inputs_path, {"source": inputs_desc, "sha256": store_file(ws.db, ws.cas, inputs_path, "inputs",
                                                                     "inputs.npz")}
