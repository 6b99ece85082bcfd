"""Evidence bundles from real runs: contents, deterministic bytes, an independent signature check,
report.md, re-deriving the verdict from the bundle alone, and the runs that cannot be bundled."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile

import pytest
from bundle_evidence import entries, home_signer, resign
from conftest import LOOSE, REPO, write_pipeline
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from edgegate_cli.context import Context
from edgegate_cli.errors import InvalidInput, VerificationFailed
from edgegate_cli.evidence import dsse
from edgegate_cli.evidence.bundle_write import create_bundle, show_bundle
from edgegate_cli.evidence.keys import signer_from_seed, trusted_keys
from edgegate_cli.evidence.verify import trusted_keys_for, verify_file
from edgegate_cli.gating.bundle_reevaluation import check_bundle


@pytest.fixture
def ws(ev):
    from edgegate_cli.store.workspace import open_workspace

    ws = open_workspace()
    yield ws
    ws.db.close()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_bundle_holds_the_run_its_payloads_and_snapshots(ev, ws):
    """Every SPEC §7 file is there; raw payloads and snapshots are the CAS bytes the run recorded."""
    run = ws.db["runs"].get(ev.passed)
    files = entries(ev.pass_zip)
    assert sorted(files) == ["capabilities.json", "gates.json", "mapping.json", "metrics.json", "pipeline.json",
                             "raw/local-cpu/0-warmup.json", "raw/local-cpu/1.json", "raw/local-cpu/2.json",
                             "raw/local-cpu/3.json", "report.md", "summary.dsse.json", "summary.json"]
    statement = json.loads(files["summary.json"])
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://edgegate.dev/evidence/v1"
    assert statement["subject"] == [{"name": "model.onnx", "digest": {"sha256": run["model_sha256"]}}]
    p = statement["predicate"]
    assert (p["run_id"], p["pipeline"], p["backend"], p["devices"]) == (ev.passed, "quickstart", "local", ["local:cpu"])
    assert (p["verdict"], p["error_code"], p["created_at"]) == ("passed", None, run["finished_at"])
    assert p["signer"] == {"key_id": ev.key_id}
    assert p["model"]["sha256"] == run["model_sha256"] and p["model"]["form"] == "onnx"
    assert p["files"] == {n: sha(b) for n, b in files.items() if not n.startswith("summary")}
    assert [g["gate"] for g in p["gates"]] == ["latency_ms <= 250", "latency_p90_ms <= 500", "peak_memory_mb < 1024",
                                               "throughput_ips >= 4"]
    import onnxruntime

    assert p["versions"]["edgegate"] == "0.1.0" and p["versions"]["onnxruntime"] == onnxruntime.__version__
    payload_rows = list(ws.db["run_payloads"].rows_where("run_id = ?", [ev.passed], order_by="repeat_index"))
    assert [(r["file"], r["warmup"]) for r in p["raw"]] == [
        ("raw/local-cpu/0-warmup.json", True), ("raw/local-cpu/1.json", False), ("raw/local-cpu/2.json", False),
        ("raw/local-cpu/3.json", False)]
    assert [p["files"][r["file"]] for r in p["raw"]] == ["sha256:" + r["sha256"] for r in payload_rows]
    assert p["files"]["mapping.json"] == "sha256:" + run["mapping_sha256"]
    assert p["files"]["capabilities.json"] == "sha256:" + run["capabilities_sha256"]
    assert json.loads(files["gates.json"]) == json.loads(run["gates_eval_json"])
    envelope = json.loads(files["summary.dsse.json"])
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(envelope["payload"]) == files["summary.json"]


def test_zip_entries_are_sorted_stored_and_dated_1980(ev):
    with zipfile.ZipFile(ev.pass_zip) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {(i.date_time, i.compress_type, i.external_attr >> 16) for i in infos} == {
        ((1980, 1, 1, 0, 0, 0), zipfile.ZIP_STORED, 0o100644)}


def test_bundling_the_same_run_twice_gives_identical_bytes_and_is_recorded(ev, ws, tmp_path):
    first = create_bundle(ws, ev.passed, home_signer(ev.home), out=tmp_path / "a.zip")
    second = create_bundle(ws, ev.passed, home_signer(ev.home), out=tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes() == ev.pass_zip.read_bytes()
    assert first.sha256 == second.sha256 == sha(ev.pass_zip.read_bytes())
    digest = first.sha256.removeprefix("sha256:")
    assert ws.db["runs"].get(ev.passed)["bundle_sha256"] == digest
    assert ws.cas.read_bytes(digest, verify=True) == ev.pass_zip.read_bytes()
    assert ws.db["artifacts"].get(digest)["kind"] == "bundle"
    assert ws.db["artifact_refs"].count_where("sha256 = ? and ref_kind = 'bundle' and ref_id = ?",
                                              [digest, ev.passed]) == 1
    events = [json.loads(e["detail_json"]) for e in ws.db["audit_events"].rows_where("event = 'bundle_created'")]
    assert {"run_id": ev.passed, "sha256": first.sha256, "key_id": ev.key_id, "path": str(tmp_path / "b.zip"),
            "include_model": False} in events


def test_an_independent_ed25519_implementation_verifies_the_signature(ev):
    """`cryptography`'s Ed25519 and PAE written here from the DSSE spec (protocol.md) accept the envelope."""
    files = entries(ev.pass_zip)
    envelope = json.loads(files["summary.dsse.json"])
    payload_type = envelope["payloadType"].encode("utf-8")
    body = base64.b64decode(envelope["payload"])
    pae = b"DSSEv1 " + str(len(payload_type)).encode() + b" " + payload_type + b" " + str(len(body)).encode() \
        + b" " + body
    key = load_pem_public_key(ev.pem.read_bytes())
    assert isinstance(key, Ed25519PublicKey)
    (signature,) = envelope["signatures"]
    key.verify(base64.b64decode(signature["sig"]), pae)  # raises InvalidSignature if not
    assert body == files["summary.json"] and signature["keyid"] == ev.key_id
    statement = json.loads(body)
    for name, digest in statement["predicate"]["files"].items():
        assert "sha256:" + hashlib.sha256(files[name]).hexdigest() == digest


def test_report_md_has_verdict_gates_metrics_and_environment(ev):
    report = entries(ev.fail_zip)["report.md"].decode()
    metrics = json.loads(entries(ev.fail_zip)["metrics.json"])["local:cpu"]["latency_ms"]
    lines = report.splitlines()
    assert lines[0] == f"# EdgeGate evidence: {ev.failed}"
    assert lines[2].startswith(f"**Verdict: FAILED** — run `{ev.failed}` of pipeline `quickstart-fail` on local "
                               "(local:cpu), model `model.onnx` (sha256:")
    gate = next(ln for ln in lines if ln.startswith("| local:cpu | latency_ms <= 0.001 |"))
    assert gate.startswith(f"| local:cpu | latency_ms <= 0.001 | FAIL | {metrics['value']:.4g} | ms | <= 0.001 |")
    per_repeat = ", ".join(f"{v:.4g}" for v in metrics["per_repeat"])
    assert (f"| local:cpu | latency_ms | {metrics['value']:.4g} | ms | {per_repeat} | {metrics['cv']:.4g} | 3 | 600 |"
            in lines)
    import onnxruntime

    for row in ("| EdgeGate | 0.1.0 |", f"| ONNX Runtime | {onnxruntime.__version__} |"):
        assert row in lines
    assert any(ln.startswith("| CPU | ") for ln in lines) and any(ln.startswith("| OS | ") for ln in lines)
    assert "4 raw payloads (3 measurement repeats, 1 warmup) under raw/." in report


def test_include_model_adds_the_model_bytes_and_still_verifies(ev, ws, tmp_path):
    result = create_bundle(ws, ev.passed, home_signer(ev.home), out=tmp_path / "m.zip", include_model=True)
    model = (REPO / "examples" / "quickstart" / "model.onnx").read_bytes()
    assert entries(tmp_path / "m.zip")["model/model.onnx"] == model
    assert result.files["model/model.onnx"] == sha(model)
    assert verify_file(tmp_path / "m.zip", trusted_keys_for(Context(), [str(ev.pem)])[0]).files_checked == 11


def test_gate_check_agrees_with_the_signed_verdicts(ev):
    trusted = trusted_keys_for(Context(), [str(ev.pem)])[0]
    passed, failed = check_bundle(ev.pass_zip, trusted), check_bundle(ev.fail_zip, trusted)
    assert (passed.verdict, passed.signed_verdict, passed.agrees, passed.mismatches) == ("passed", "passed", True, [])
    assert (failed.verdict, failed.signed_verdict, failed.agrees) == ("failed", "failed", True)


def test_altered_and_resigned_payload_is_caught_by_recomputation(ev, tmp_path):
    """Hashes and signature are valid, but the raw numbers no longer support the signed verdict."""
    files = entries(ev.pass_zip)
    changes = {}
    for name in ("raw/local-cpu/1.json", "raw/local-cpu/2.json", "raw/local-cpu/3.json"):
        payload = json.loads(files[name])
        payload["iterations_ms"] = [v + 1000.0 for v in payload["iterations_ms"]]
        changes[name] = json.dumps(payload, sort_keys=True).encode()
    forged = resign(ev.pass_zip, tmp_path / "forged.zip", home_signer(ev.home), changes)
    trusted = trusted_keys_for(Context(), [str(ev.pem)])[0]
    verify_file(forged, trusted)  # the forgery is well signed
    result = check_bundle(forged, trusted)
    assert (result.verdict, result.signed_verdict, result.agrees) == ("failed", "passed", False)
    assert result.mismatches == ["latency_ms <= 250 on local:cpu: signed pass, recomputed fail",
                                 "latency_p90_ms <= 500 on local:cpu: signed pass, recomputed fail",
                                 "throughput_ips >= 4 on local:cpu: signed pass, recomputed fail"]


def test_show_reads_without_verifying(ev, tmp_path):
    forged = resign(ev.pass_zip, tmp_path / "other.zip", signer_from_seed(bytes(32)))
    shown = show_bundle(forged)
    assert (shown.verified, shown.verdict, shown.run_id) == (False, "passed", ev.passed)
    assert shown.signer != ev.key_id and shown.entries["summary.json"] > 0


def test_a_run_that_never_collected_payloads_is_refused(probed_home, tmp_path):
    from edgegate_cli.errors import MissingRequiredMetric
    from edgegate_cli.evidence.keys import generate_key, load_signing_key
    from edgegate_cli.runs.execute import RunRequest, execute_run
    from edgegate_cli.spec.pipeline import load_pipeline
    from edgegate_cli.store.workspace import open_workspace

    ws = open_workspace()
    generate_key(ws)
    pipe = write_pipeline(tmp_path / "npu.yaml", gates="[{metric: npu_layer_fraction, op: '>=', value: 0.5}]",
                          extra_policy=LOOSE)
    with pytest.raises(MissingRequiredMetric):
        execute_run(ws, RunRequest(load_pipeline(pipe)), lambda _m: None)
    (run,) = ws.db["runs"].rows
    with pytest.raises(InvalidInput) as exc:
        create_bundle(ws, run["id"], load_signing_key(ws), out=tmp_path / "x.zip")
    assert exc.value.message == (f"run {run['id']} ended error (MISSING_REQUIRED_METRIC) before any payload was "
                                 "collected; there is no evidence to bundle")
    assert not (tmp_path / "x.zip").exists()


def test_an_active_run_is_refused(probed_home, tmp_path):
    from edgegate_cli.evidence.keys import generate_key, load_signing_key
    from edgegate_cli.store.runs import create_run
    from edgegate_cli.store.workspace import open_workspace

    ws = open_workspace()
    generate_key(ws)
    run_id = create_run(ws.db, pipeline="p", pipeline_path="p.yaml", pipeline_sha256="0" * 64, backend="local",
                        devices=["local:cpu"], policy={}, gates=[])
    with pytest.raises(InvalidInput) as exc:
        create_bundle(ws, run_id, load_signing_key(ws), out=tmp_path / "x.zip")
    assert exc.value.message == f"run {run_id} is still queued; a run can be bundled once it has finished"


def test_a_corrupt_payload_blob_is_never_signed(ev, ws, tmp_path):
    """A raw payload altered in the CAS after the run: bundling stops with CorruptBlob, nothing written."""
    from edgegate_cli.errors import CorruptBlob

    row = next(ws.db["run_payloads"].rows_where("run_id = ? and repeat_index = 2", [ev.passed]))
    path = ws.cas.path_of(row["sha256"])
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b'"repeat_index":2', b'"repeat_index":9'))
    with pytest.raises(CorruptBlob):
        create_bundle(ws, ev.passed, home_signer(ev.home), out=tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


def test_verify_rejects_a_bundle_whose_raw_index_names_an_unlisted_file(ev, tmp_path):
    """predicate.raw pointing outside the signed files cannot smuggle a payload into the recomputation."""
    statement = json.loads(entries(ev.pass_zip)["summary.json"])
    statement["predicate"]["raw"][1]["file"] = "raw/local-cpu/elsewhere.json"
    forged = resign(ev.pass_zip, tmp_path / "f.zip", home_signer(ev.home),
                    {"summary.json": json.dumps(statement).encode()})
    with pytest.raises(VerificationFailed) as exc:
        check_bundle(forged, trusted_keys_for(Context(), [str(ev.pem)])[0])
    assert exc.value.message == ("raw/local-cpu/elsewhere.json: not in the bundle; the verdict cannot be "
                                 "re-derived without it")
    assert dsse.EVIDENCE_PAYLOAD_TYPE in entries(forged)["summary.dsse.json"].decode()


def test_genai_bundle_carries_the_promptpack_and_re_derives(probed_home, tmp_path):
    """A GenAI run: promptpack.json is the pack's canonical bytes; the verdict re-derives from the bundle."""
    from edgegate_cli.evidence.keys import generate_key, load_signing_key
    from edgegate_cli.runs.execute import RunRequest, execute_run
    from edgegate_cli.spec.pipeline import load_pipeline
    from edgegate_cli.spec.promptpacks import canonicalize, load_pack
    from edgegate_cli.store.workspace import open_workspace

    ws = open_workspace()
    generate_key(ws)
    outcome = execute_run(ws, RunRequest(load_pipeline(REPO / "examples" / "genai" / "pipeline.yaml")), lambda _m: None)
    result = create_bundle(ws, outcome.run_id, load_signing_key(ws), out=tmp_path / "g.zip")
    files = entries(tmp_path / "g.zip")
    pack = canonicalize(load_pack(REPO / "examples" / "genai" / "pack.json"))
    assert files["promptpack.json"] == pack
    predicate = json.loads(files["summary.json"])["predicate"]
    assert predicate["inputs"] == {"source": "promptpack tiny-genai-smoke@1.0.0",
                                   "sha256": hashlib.sha256(pack).hexdigest()}
    assert predicate["model"]["form"] == "genai" and "onnxruntime_genai" in predicate["versions"]
    assert result.verdict == outcome.verdict
    check = check_bundle(tmp_path / "g.zip", trusted_keys(ws))
    assert (check.verdict, check.agrees) == (outcome.verdict, True)


def test_payload_environment_reads_local_and_ai_hub_payloads():
    """Local payloads carry `environment`; AI Hub payloads name the SDK under `edgegate.sdk_version`."""
    from edgegate_cli.evidence.bundle_report import payload_environment

    assert payload_environment({"environment": {"onnxruntime": "1.32.0", "cpu": "x"}}) == {
        "onnxruntime": "1.32.0", "cpu": "x"}
    assert payload_environment({"edgegate": {"sdk_version": "0.56.0", "job_id": "j1"}}) == {"qai_hub": "0.56.0"}
    assert payload_environment({"execution_summary": {}}) == {}


def test_relative_gate_baselines_travel_in_the_bundle(probed_home, tmp_path):
    """A run gated against `last-passed`'s recorded samples: the baseline's mapping and payloads are in the
    bundle, the verdict re-derives from it, and a re-signed faster baseline makes the relative gate fail.
    (Paired baselines travel the same way: tests/commands/test_paired.py.)"""
    from edgegate_cli.evidence.keys import generate_key, load_signing_key
    from edgegate_cli.runs.execute import RunRequest, execute_run
    from edgegate_cli.spec.pipeline import load_pipeline
    from edgegate_cli.store.workspace import open_workspace

    ws = open_workspace()
    generate_key(ws)
    pipe = write_pipeline(tmp_path / "rel.yaml", gates="[{metric: latency_ms, baseline: last-passed, "
                          "max_regression_pct: 900, baseline_mode: recorded}]", extra_policy=LOOSE)
    first = execute_run(ws, RunRequest(load_pipeline(pipe)), lambda _m: None)
    second = execute_run(ws, RunRequest(load_pipeline(pipe)), lambda _m: None)
    assert (first.verdict, second.verdict) == ("passed", "passed")
    create_bundle(ws, second.run_id, load_signing_key(ws), out=tmp_path / "rel.zip")
    files = entries(tmp_path / "rel.zip")
    predicate = json.loads(files["summary.json"])["predicate"]
    assert predicate["baselines"] == {"last-passed@local:cpu": {
        "source": "last-passed", "run_id": first.run_id, "bundle_sha256": None, "missing": None, "mode": "recorded",
        "paired_reason": "every relative gate on this baseline asks for baseline_mode: recorded"}}
    assert predicate["gates"][0]["baseline_run_id"] == first.run_id
    baseline_payloads = [n for n in files if n.startswith("baselines/")]
    assert len(baseline_payloads) == 4  # the baseline's mapping and its 3 measurement payloads
    trusted = trusted_keys(ws)
    assert check_bundle(tmp_path / "rel.zip", trusted).agrees
    faster, renamed = {}, {}
    for name in baseline_payloads:
        doc = json.loads(files[name])
        if "iterations_ms" in doc:
            doc["iterations_ms"] = [v / 100 for v in doc["iterations_ms"]]
            faster[name] = json.dumps(doc, sort_keys=True).encode()
    mislabelled = resign(tmp_path / "rel.zip", tmp_path / "m.zip", load_signing_key(ws), faster)
    with pytest.raises(VerificationFailed) as exc:
        check_bundle(mislabelled, trusted)
    assert exc.value.message.endswith(": content does not hash to the digest it is named by")
    records = json.loads(files["baselines.json"])
    for name, data in faster.items():
        old, new = name.removeprefix("baselines/").removesuffix(".json"), hashlib.sha256(data).hexdigest()
        renamed.update({name: None, f"baselines/{new}.json": data})
        for rec in records.values():
            rec["payloads"] = [new if d == old else d for d in rec["payloads"]]
    renamed["baselines.json"] = json.dumps(records).encode()
    forged = resign(tmp_path / "rel.zip", tmp_path / "forged.zip", load_signing_key(ws), renamed)
    result = check_bundle(forged, trusted)
    assert (result.signed_verdict, result.verdict) == ("passed", "failed")
    assert result.mismatches == ["latency_ms within 900% of last-passed on local:cpu: signed pass, recomputed fail"]
