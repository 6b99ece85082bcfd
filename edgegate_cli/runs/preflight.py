"""Checks before a run spends device time (SPEC §5 preflight).

`check_inputs` validates what needs no state before the run exists (bad input leaves nothing
behind); `ensure_mapping` and `check_required_metrics` make sure every required gate's metric can
be measured on this backend, from the stored capabilities.
"""

from __future__ import annotations

from ..backends.base import Progress
from ..backends.registry import get_backend
from ..errors import InvalidInput, MissingRequiredMetric
from ..spec.pipeline import Pipeline
from ..store.workspace import Workspace


def check_inputs(pipeline: Pipeline, ws: Workspace):
    """Validate everything a run needs before it exists; return (backend, model info, PromptPack or None,
    input feeds: what each model input will be fed, see `inputs.plan_feeds`)."""
    from ..files import require_regular
    from ..spec.validators import validate_model
    from .inputs import plan_feeds

    backend = get_backend(pipeline.backend, ws=ws)
    info = validate_model(pipeline.model.path, pipeline.model.input_specs)
    backend.check_model_form(info.form, pipeline.source)
    backend.check_devices(pipeline.devices, pipeline.source)
    for key in ("dataset", "reference_outputs"):
        value = getattr(pipeline.model, key)
        if value:
            require_regular(value, where=f"{pipeline.source}: $.model.{key}")
    _check_baseline_paths(pipeline)
    pack = _resolve_pack(ws, pipeline, info)
    return backend, info, pack, plan_feeds(pipeline, info)


def _check_baseline_paths(pipeline: Pipeline) -> None:
    """A relative gate's bundle path that the OS refuses (a name too long) or that is not a regular file (a
    FIFO) is refused before the run exists; a missing one is left to the baseline rules (a pin may win)."""
    import stat

    from ..files import kind_of, stat_path

    for i, gate in enumerate(pipeline.gates):
        if gate.baseline and gate.baseline.endswith(".zip"):
            where = f"{pipeline.source}: $.gates[{i}].baseline"
            st = stat_path(gate.baseline, where=where)
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise InvalidInput(f"{where}: {gate.baseline}: is {kind_of(st.st_mode)}, not a bundle file")


def _resolve_pack(ws: Workspace, pipeline: Pipeline, info):
    """The PromptPack a GenAI pipeline names; `promptpack.path` adds it first (immutably) if needed."""
    from ..errors import InvalidInput
    from ..spec.promptpacks import add_pack, resolve_pipeline_pack

    ref = pipeline.promptpack
    if info.form == "genai" and not ref:
        raise InvalidInput(f"{pipeline.source}: $.promptpack: a GenAI model is gated on a PromptPack; add "
                           "promptpack: {id, version} (see `edgegate pack add`)", path=pipeline.source)
    if not ref:
        return None
    if info.form != "genai":
        raise InvalidInput(f"{pipeline.source}: $.promptpack: {info.form} models take no PromptPack; only GenAI "
                           "folders (onnxruntime-genai, with genai_config.json) do", path=pipeline.source)
    if ref.get("path"):
        added = add_pack(ws, ref["path"])
        if (added.pack_id, added.version) != (ref["id"], ref["version"]):
            raise InvalidInput(f"{pipeline.source}: $.promptpack.path: {ref['path']} holds "
                               f"{added.pack_id}@{added.version}, not {ref['id']}@{ref['version']}")
    return resolve_pipeline_pack(ws, ref["id"], ref["version"], pipeline.source)


def ensure_mapping(ws: Workspace, pipeline: Pipeline, progress: Progress) -> tuple[dict, str, str]:
    """The backend's stored mapping, its digest and the capabilities' digest; a fresh home probes the
    local backend first (and says so). Raises MissingRequiredMetric when another backend was never probed."""
    from .probe import current_with_digest, probe_backend

    found = current_with_digest(ws, "metric_mappings", pipeline.backend)
    if found is None:
        if pipeline.backend != "local":
            raise MissingRequiredMetric(f"no capabilities recorded for backend {pipeline.backend} in {ws.home.path}",
                                        hint=f"run `edgegate probe --backend {pipeline.backend}` first")
        progress("no local capabilities recorded yet: probing the local backend first (once per home)")
        probe_backend(ws, "local", progress)
        found = current_with_digest(ws, "metric_mappings", pipeline.backend)
    caps = current_with_digest(ws, "capabilities", pipeline.backend)
    return found[0], found[1], caps[1]


def check_required_metrics(pipeline: Pipeline, mapping: dict, backend: str) -> None:
    """Every required gate's metric must be available and stable for this backend (SPEC §5), and every
    relative gate's metric must have per-iteration samples. Raises MissingRequiredMetric / InvalidInput."""
    from ..errors import InvalidInput
    from ..measure.samples import has_iteration_samples

    provided = {"reference_outputs"} if pipeline.model and pipeline.model.reference_outputs else set()
    for i, gate in enumerate(pipeline.gates):
        if gate.relative and mapping["metrics"].get(gate.metric, {}).get("available") and \
                not has_iteration_samples(mapping, gate.metric):
            raise InvalidInput(f"{pipeline.source}: $.gates[{i}]: relative gate on {gate.metric}: the {backend} "
                               f"backend reports one {gate.metric} value per repeat, not per-iteration samples, so "
                               "there is nothing to test for significance",
                               hint=f"gate {gate.metric} with an absolute threshold {{metric, op, value}} instead")
        if not gate.required:
            continue
        entry = mapping["metrics"].get(gate.metric, {})
        hint = f"run `edgegate probe --backend {backend}` to refresh the capabilities, or make the gate optional"
        if not entry.get("available"):
            raise MissingRequiredMetric(f"{pipeline.source}: gate {gate.label!r} needs {gate.metric}, which the "
                                        f"{backend} backend cannot provide: {entry.get('reason', 'unknown')}",
                                        hint=hint)
        if entry.get("requires") and entry["requires"] not in provided:
            raise MissingRequiredMetric(f"{pipeline.source}: gate {gate.label!r} needs {gate.metric}, which "
                                        f"needs model.{entry['requires']} in the pipeline",
                                        hint=f"add model.{entry['requires']} (an .npz keyed by output name)")
        if not entry.get("stable"):
            raise MissingRequiredMetric(f"{pipeline.source}: gate {gate.label!r} needs {gate.metric}, seen in "
                                        f"only {entry.get('seen_in_runs', 0)} probe run(s); stable needs 2",
                                        hint=hint)


def provided_inputs(pipeline: Pipeline) -> set[str]:
    """What the pipeline supplies for metrics that need it (mapping entries with `requires`)."""
    return {"reference_outputs"} if pipeline.model and pipeline.model.reference_outputs else set()
