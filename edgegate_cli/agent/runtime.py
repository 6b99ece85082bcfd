"""The agent itself: its state, blob store, serving slot and health, restored on start, and the
operations every route shares — status, inference, activation (the one place a model starts serving)
and recording refusals. Deploys and rollbacks are in deploy.py and rollback.py.

One lock guards state.json and the slot's exchange; inference never takes it (it reads the slot's
reference once and runs on that session).
"""

from __future__ import annotations

import copy
import logging
import shutil
import threading
import time
from pathlib import Path

from .. import __version__
from ..context import Context
from .blobs import BlobStore
from .codes import AgentRefusal, Code
from .config import AgentConfig
from .health import Metrics, VersionHealth, reference_agreement
from .models import LoadedModel, Slot, feeds_from_json, load_model, outputs_to_json, warm_up, warmup_feeds
from .state import StateFile, find_deployment, in_flight, prune, record_refusal, utc_text

log = logging.getLogger("edgegate.agent")
PUBLIC_RELEASE = ("name", "version", "sha256", "manifest_sha256", "since", "deployment_id")


class Agent:
    def __init__(self, cfg: AgentConfig, ctx: Context | None = None):
        self.cfg = cfg
        self.clock = (ctx or Context()).clock.now  # expiry, replay windows and timestamps read this clock
        self.files = StateFile(cfg.state_dir)
        self.state = self.files.load()
        self.blobs = BlobStore(cfg.state_dir / "blobs")
        self.releases = cfg.state_dir / "releases"
        self.releases.mkdir(exist_ok=True)
        self.metrics, self.health, self.slot = Metrics(), VersionHealth(), Slot()
        self.lock = threading.RLock()
        self.started_at = utc_text(self.clock())
        self.restore_error: str | None = None

    # -- state -----------------------------------------------------------------------------------

    def commit(self, change):
        """Apply `change(draft)` to a copy of the state, make the copy durable, then adopt it; returns
        what `change` returns. If the write fails (disk full), the state in memory is unchanged too."""
        with self.lock:
            draft = copy.deepcopy(self.state)
            result = change(draft)
            prune(draft, self.clock())
            self.files.save(draft)
            self.state = draft
            return result

    def record(self, exc: AgentRefusal) -> AgentRefusal:
        """Count a refusal in /metrics and record it in state.json; returns it for `raise`."""
        self.commit(lambda draft: record_refusal(draft, exc.code, exc.message, self.clock()))
        self.count(exc)
        return exc

    def count(self, exc: AgentRefusal) -> None:
        if not getattr(exc, "counted", False):
            exc.counted = True
            self.metrics.refusals.labels(exc.code).inc()

    def set_status(self, dep_id: str, status: str) -> None:
        self.commit(lambda draft: find_deployment(draft, dep_id).update(status=status))

    def fail(self, dep_id: str, exc: AgentRefusal) -> None:
        """A deployment ends failed with the refusal's code; the active model is untouched."""
        log.warning("deployment %s failed: %s %s", dep_id, exc.code, exc.message)

        def change(draft: dict) -> None:
            find_deployment(draft, dep_id).update(status="failed", code=exc.code, message=exc.message,
                                                  envelope=None, ended_at=utc_text(self.clock()))
            record_refusal(draft, exc.code, exc.message, self.clock())

        self.commit(change)
        self.count(exc)

    # -- serving ---------------------------------------------------------------------------------

    def load_release(self, release: dict, *, verify: bool) -> LoadedModel:
        """Load (and warm up) a release from its directory; with `verify`, rehash its files first."""
        root = self.cfg.state_dir / release["dir"]
        if verify:
            for rel, hexdigest, size in release["files"]:
                _check_file(root / rel, hexdigest, size)
        model = load_model(release, root / release["model_file"], self.cfg.threads)
        warm_up(model, self.cfg.warmup, warmup_feeds(model, release.get("input_specs")),
                self.cfg.inject_latency_ms / 1000)
        return model

    def activate(self, model: LoadedModel, dep_id: str, kind: str, started: float) -> None:
        """Make `model` serve: persist active/previous first, then exchange the slot's reference."""
        with self.lock:
            now = utc_text(self.clock())
            release = {**model.release, "since": now, "deployment_id": dep_id}
            elapsed = time.monotonic() - started

            def change(draft: dict) -> None:
                draft["previous"], draft["active"] = draft["active"], release
                find_deployment(draft, dep_id).update(status="active", activated_at=now, envelope=None,
                                                      activation_s=round(elapsed, 4), ended_at=now)

            self.commit(change)
            model.release = release
            self.slot.swap(model)
            self.metrics.swaps.labels(kind).inc()
            self.metrics.activation.observe(elapsed)
            self.metrics.set_active(model.label)
            self._collect()
        log.info("%s %s %s active after %.3f s (%s)", kind, release["name"], release["version"], elapsed, dep_id)
        if release.get("reference"):
            threading.Thread(target=self._check_reference, args=(model,), daemon=True).start()

    def _check_reference(self, model: LoadedModel) -> None:
        root = self.cfg.state_dir / model.release["dir"] / "reference"
        result = {**reference_agreement(model.session, root / "inputs.npz", root / "outputs.npz"),
                  "checked_at": utc_text(self.clock())}
        self.health.set_reference(model.label, result)
        if "cosine" in result:
            self.metrics.cosine.labels(model.release["name"], model.release["version"]).set(result["cosine"])
            self.metrics.max_err.labels(model.release["name"], model.release["version"]).set(result["max_abs_err"])

    def _collect(self) -> None:
        """Keep only the active and previous releases' directories and blobs (lock held)."""
        kept = [r for r in (self.state["active"], self.state["previous"]) if r]
        busy = in_flight(self.state)
        dirs = {Path(r["dir"]).name for r in kept} | ({_dir_name(busy["release"])} if busy else set())
        for path in self.releases.iterdir():
            if path.name not in dirs:
                shutil.rmtree(path, ignore_errors=True)
        self.blobs.collect({hexdigest for r in kept for _, hexdigest, _ in r["files"]})

    def infer(self, body) -> dict:
        model = self.slot.current()
        if model is None:
            raise AgentRefusal(Code.NO_ACTIVE_MODEL, "no model is active on this device yet"
                               + (f" ({self.restore_error})" if self.restore_error else ""),
                               hint="deploy a release with POST /v1/deploy")
        if not isinstance(body, dict) or set(body) != {"inputs"}:
            raise AgentRefusal(Code.INVALID_REQUEST, 'the body must be {"inputs": {name: nested list}}')
        feeds = feeds_from_json(model, body["inputs"])
        start = time.perf_counter()
        if self.cfg.inject_latency_ms:
            time.sleep(self.cfg.inject_latency_ms / 1000)
        label = model.label
        try:
            outputs = model.session.run(None, feeds)
        except Exception as exc:
            self.metrics.errors.labels(label["name"], label["version"]).inc()
            self.health.observe(label, None)
            raise AgentRefusal(Code.INFERENCE_FAILED, f"{label['name']} {label['version']} failed on these inputs: "
                                                      f"{' '.join(str(exc).split())[:300]}") from None
        elapsed = time.perf_counter() - start
        self.metrics.inferences.labels(label["name"], label["version"]).inc()
        self.metrics.latency.labels(label["name"], label["version"]).observe(elapsed)
        self.health.observe(label, elapsed)
        names = [o.name for o in model.session.get_outputs()]
        return {"outputs": outputs_to_json(names, outputs), "latency_ms": elapsed * 1000, "model": label}

    # -- reading ---------------------------------------------------------------------------------

    def status(self) -> dict:
        with self.lock:
            state = self.state
            last = state["deployments"][-1] if state["deployments"] else None
            doc = {"device_id": self.cfg.device_id, "device_type": self.cfg.device_type,
                   "cohorts": list(self.cfg.cohorts), "agent": {"version": __version__, "started_at": self.started_at},
                   "active": _public(state["active"]), "previous": _public(state["previous"]),
                   "highest": dict(state["highest"]), "deployment": public_deployment(last) if last else None,
                   "require_evidence": self.cfg.require_evidence, "refusals": dict(state["refusals"]),
                   "recent_refusals": list(state["recent_refusals"])}
        serving = self.slot.current()
        doc["serving"] = serving.label if serving else None
        doc["restore_error"] = self.restore_error
        doc["health"] = self.health.report()
        return doc

    def deployment(self, dep_id: str) -> dict:
        with self.lock:
            dep = find_deployment(self.state, dep_id)
            if dep is None:
                raise AgentRefusal(Code.NOT_FOUND, f"no deployment {dep_id[:80]!r} on this device")
            return public_deployment(dep)

    # -- start -----------------------------------------------------------------------------------

    def restore(self) -> None:
        """Serve the active release again, its files rehashed first (deploy.resume_interrupted then
        continues a deployment a crash interrupted)."""
        for stale in self.releases.glob(".*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        active = self.state["active"]
        if active:
            try:
                model = self.load_release(active, verify=True)
            except AgentRefusal as exc:
                self.restore_error = f"{exc.code}: {exc.message}"
                log.error("cannot serve the active release again: %s", self.restore_error)
            else:
                self.slot.active = model
                self.metrics.set_active(model.label)


def _dir_name(release: dict) -> str:
    return release["manifest_sha256"].removeprefix("sha256:")


def _public(release: dict | None) -> dict | None:
    return {k: release.get(k) for k in PUBLIC_RELEASE} if release else None


def public_deployment(dep: dict) -> dict:
    return {k: v for k, v in dep.items() if k not in ("envelope", "nonce")}


def _check_file(path: Path, hexdigest: str, size: int) -> None:
    import hashlib

    try:
        with open(path, "rb") as src:
            digest = hashlib.file_digest(src, "sha256")
        ok = path.stat().st_size == size and digest.hexdigest() == hexdigest
    except OSError:
        ok = False
    if not ok:
        raise AgentRefusal(Code.DIGEST_MISMATCH, f"{path}: missing, or not the {size} bytes of sha256:{hexdigest}")
