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


def plan_feeds(pipeline: Pipeline, info) -> dict | None:
    """What the model will be fed, decided and checked before the run exists (preflight): a dataset's arrays
    (names, shapes, dtypes, sizes against the model's inputs) or generated inputs (shapes with every dynamic
    dimension resolved, constants and ranges that fit their dtypes). None for a GenAI model (its PromptPack).
    The reference outputs' declared sizes are checked too. Raises InvalidInput / LimitExceeded."""
    from ..spec.datasets import check_dataset, read_npz_headers
    from ..spec.inputs import plan_inputs

    if info.form == "genai":
        return None
    model = pipeline.model
    if model.reference_outputs:
        read_npz_headers(model.reference_outputs, f"{pipeline.source}: $.model.reference_outputs")
    if model.dataset:
        source, tensors = check_dataset(info.inputs, model.dataset, pipeline.source)
    else:
        source = f"generated (seed {pipeline.run_policy.seed})"
        tensors = plan_inputs(info.inputs, model.input_specs, pipeline.source)
    return {"source": source, "tensors": tensors}


def model_inputs(ws: Workspace, pipeline: Pipeline, info, pack, tmp: Path,
                 feeds: dict | None = None) -> tuple[str | None, dict]:
    """What the model is fed: an .npz (stored in the CAS) described by `feeds` (from `plan_feeds`, which
    this computes when not given), or for GenAI the PromptPack. The description lists every input's shape,
    dtype and fill, so the run, `runs show` and the bundle say what was measured."""
    from ..spec.inputs import generate_inputs
    from ..store.cas import untag

    if pack is not None:
        return None, {"source": f"promptpack {pack.pack_id}@{pack.version}", "sha256": untag(pack.sha256)}
    feeds = feeds or plan_feeds(pipeline, info)
    if pipeline.model.dataset:
        inputs_path = pipeline.model.dataset
    else:
        inputs_path = str(tmp / "inputs.npz")
        generate_inputs(info.inputs, pipeline.model.input_specs, pipeline.run_policy.seed, Path(inputs_path),
                        pipeline.source)
    return inputs_path, {**feeds, "sha256": store_file(ws.db, ws.cas, inputs_path, "inputs", "inputs.npz")}
