"""Real evidence for the bundle tests: one home with a passing quickstart run and a failing
quickstart-fail run (the example pipelines' gates, with a loose flake policy), a signing key, and both
runs' bundles.

Built once per test module (`build_evidence`) and copied into each test's fresh home (`use_evidence`).
Also: rewriting a bundle's zip with changed entries, and re-signing one with any key.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import LOOSE, REPO, write_pipeline

QUICKSTART = REPO / "examples" / "quickstart" / "pipeline.yaml"
QUICKSTART_FAIL = REPO / "examples" / "quickstart-fail" / "pipeline.yaml"
# The two example pipelines' model, iterations and gates, with a loose flake policy: the machine is
# shared and a noisy neighbour must not turn the expected pass/fail into FLAKY_METRIC.
PASS_GATES = ("[{metric: latency_ms, op: '<=', value: 250}, {metric: latency_p90_ms, op: '<=', value: 500}, "
              "{metric: peak_memory_mb, op: '<', value: 1024}, {metric: throughput_ips, op: '>=', value: 4, "
              "required: false}]")
FAIL_GATES = "[{metric: latency_ms, op: '<=', value: 0.001}, {metric: peak_memory_mb, op: '<', value: 1024}]"


def example_pipeline(directory: Path, failing: bool = False) -> Path:
    """quickstart.yaml (passes) or quickstart-fail.yaml (fails on latency_ms <= 0.001) in `directory`."""
    name = "quickstart-fail.yaml" if failing else "quickstart.yaml"
    return write_pipeline(directory / name, gates=FAIL_GATES if failing else PASS_GATES, iterations=200,
                          extra_policy=LOOSE)


@dataclass
class Evidence:
    root: Path
    home: Path
    key_id: str
    passed: str  # run ids
    failed: str
    pass_zip: Path
    fail_zip: Path
    pem: Path  # the signer's public key, as `keys export` writes it


def build_evidence(root: Path, template: Path) -> Evidence:
    """Run both example pipelines in a copy of the pre-probed home and bundle each run."""
    from edgegate_cli.evidence.bundle_write import create_bundle
    from edgegate_cli.evidence.keys import export_public_key, generate_key, load_signing_key
    from edgegate_cli.runs.execute import RunRequest, execute_run
    from edgegate_cli.spec.pipeline import load_pipeline
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    home = root / "home"
    shutil.copytree(template, home)
    ws = open_workspace(Home(home, "--home"))
    key = generate_key(ws)
    passed = execute_run(ws, RunRequest(load_pipeline(example_pipeline(root))), lambda _msg: None)
    failed = execute_run(ws, RunRequest(load_pipeline(example_pipeline(root, failing=True))), lambda _msg: None)
    assert (passed.verdict, failed.verdict) == ("passed", "failed"), (passed.error_detail, failed.error_detail)
    signer = load_signing_key(ws)
    pass_zip = Path(create_bundle(ws, passed.run_id, signer, out=root / "pass.bundle.zip").path)
    fail_zip = Path(create_bundle(ws, failed.run_id, signer, out=root / "fail.bundle.zip").path)
    pem = root / "signer.pem"
    pem.write_text(export_public_key(ws, key.key_id))
    ws.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ws.db.close()
    return Evidence(root, home, key.key_id, passed.run_id, failed.run_id, pass_zip, fail_zip, pem)


def use_evidence(evidence: Evidence, home: Path, tmp_path: Path) -> Evidence:
    """A private copy: the home into `home` (the test's EDGEGATE_HOME), the files into tmp_path."""
    shutil.copytree(evidence.home, home)
    copies = {name: shutil.copy(getattr(evidence, name), tmp_path) for name in ("pass_zip", "fail_zip", "pem")}
    return Evidence(tmp_path, home, evidence.key_id, evidence.passed, evidence.failed,
                    **{k: Path(v) for k, v in copies.items()})


def entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def rewrite(src: Path, dst: Path, changes: dict[str, bytes | None]) -> Path:
    """A consistent zip (as EdgeGate writes them) with entries replaced, added, or removed (None)."""
    from edgegate_cli.evidence.zip_safety import write_deterministic_zip

    files = entries(src)
    for name, data in changes.items():
        if data is None:
            del files[name]
        else:
            files[name] = data
    write_deterministic_zip(dst, files, compression=zipfile.ZIP_STORED)
    return dst


def resign(src: Path, dst: Path, signer, changes: dict[str, bytes | None] | None = None, *,
           payload_type: str | None = None) -> Path:
    """Change entries (None removes one), then list and sign them again (bundles.seal) with `signer`."""
    from edgegate_cli.canonical import canonical_json as dump_json
    from edgegate_cli.evidence.bundle_write import seal
    from edgegate_cli.evidence.dsse import sign_envelope

    files = {name: data for name, data in {**entries(src), **(changes or {})}.items() if data is not None}
    statement = json.loads(files.pop("summary.json"))
    files.pop("summary.dsse.json")
    for field in ("files", "signer"):
        statement["predicate"].pop(field)
    sealed = seal(statement, files, signer)
    if payload_type:
        sealed["summary.dsse.json"] = dump_json(sign_envelope(sealed["summary.json"], payload_type, signer))
    return rewrite(src, dst, {**sealed, **{n: None for n in set(entries(src)) - set(sealed)}})


def home_signer(home: Path):
    """The signing key of an evidence home (its newest key file)."""
    from edgegate_cli.evidence.keys import load_signing_key
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    ws = open_workspace(Home(home, "--home"))
    try:
        return load_signing_key(ws)
    finally:
        ws.db.close()


@pytest.fixture(scope="session")
def built(tmp_path_factory, _probed_template):
    """Signed bundles of real quickstart runs (pass and fail), built once per session."""
    return build_evidence(tmp_path_factory.mktemp("evidence"), _probed_template)


@pytest.fixture
def ev(built, fresh_home, tmp_path):
    """The session's evidence, copied into this test's fresh home."""
    return use_evidence(built, fresh_home, tmp_path)
