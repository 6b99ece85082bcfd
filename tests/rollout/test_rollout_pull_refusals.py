"""Rollouts over the pull path against a real store (SeaweedFS), driven by status reports written straight
into the bucket (what an agent writes, with counters from prometheus-client): the plan's refusals, reports
the release box must not trust, and a rollback that some devices never confirm."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from agent.models import linear_bytes
from agent.pull_helpers import PREFIX, position

from edgegate_cli.evidence import channel_manifest as cm
from edgegate_cli.evidence import dsse

SEED_DEVICES = [f"dev-{i}" for i in range(6)]


def metrics_text(release: str | None, latencies_s: list[float]) -> str:
    """Prometheus text as an agent exposes it: the inference latency histogram of `release`."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from edgegate_cli.agent.health import LATENCY_BUCKETS

    registry = CollectorRegistry()
    hist = Histogram("edgegate_agent_inference_latency_seconds", "x", ["name", "version"], buckets=LATENCY_BUCKETS,
                     registry=registry)
    Counter("edgegate_agent_inference_errors", "x", ["name", "version"], registry=registry)
    if release:
        name, version = release.split("@")
        for value in latencies_s:
            hist.labels(name, version).observe(value)
    return generate_latest(registry).decode()


def put_report(client, bucket: str, device: str, *, active: tuple[str, str] | None, channel_version: int | None,
               channel: str = "stable", poll: dict | None = None, latencies: int = 0, doc: dict | None = None,
               raw: bytes | None = None) -> None:
    """`active` = (NAME@VERSION, sha256)."""
    if raw is None:
        release, sha = active or (None, None)
        doc = doc or {
            "report_format": 1, "device_id": device, "reported_at": dsse.format_utc(datetime.now(UTC)),
            "active": {"name": release.split("@")[0], "version": release.split("@")[1], "sha256": sha}
            if release else None,
            "channel": {"name": channel, "seen": {"version": channel_version} if channel_version else None},
            "poll": poll or {"status": "ok", "code": None, "message": None, "release": release},
            "metrics": metrics_text(release, [0.0003] * latencies)}
        raw = json.dumps(doc).encode()
    client.put_object(Bucket=bucket, Key=f"{PREFIX}/status/{device}/status.json", Body=raw)


def channel_doc(client, bucket: str) -> dict:
    envelope = json.loads(client.get_object(Bucket=bucket, Key=f"{PREFIX}/channels/stable.json")["Body"].read())
    return json.loads(dsse.parse_envelope(envelope)[1])


@pytest.fixture
def box(invoke, tmp_path, s3_server, s3_bucket, aws_env):
    """qs 1.0.0 and 1.1.0 published here, 1.0.0 pushed to the store; returns (root, client, bucket, ids)."""
    invoke("keys", "generate")
    for seed, version in ((1, "1.0.0"), (2, "1.1.0")):
        path = tmp_path / f"model-{version}.onnx"
        path.write_bytes(linear_bytes(seed))
        invoke("publish", path, "--name", "qs", "--version", version, "--force")
    root = f"s3://{s3_bucket}/{PREFIX}"
    ids = {v: json.loads(invoke("releases", "show", f"qs@{v}", "--json").stdout)["release"]["identity"]
           for v in ("1.0.0", "1.1.0")}
    return root, s3_server.client(), s3_bucket, ids


def test_plan_refusals(invoke, box, monkeypatch):
    root, client, bucket, ids = box

    def refused(*args, code: str) -> str:
        result = invoke("rollout", "plan", "qs@1.1.0", "--via", root, *args, expect=2)
        assert result.stderr.startswith(f"Error [{code}]: "), result.stderr
        assert "Traceback" not in result.stderr
        return result.stderr.splitlines()[0]

    assert refused(code="NO_DEVICES") == (f"Error [NO_DEVICES]: no device reports on channel stable under {root} "
                                          "(start agents with `edgegate agent serve --channel ...` first; they report "
                                          "after their first poll)")
    for device in SEED_DEVICES:
        put_report(client, bucket, device, active=("qs@1.0.0", ids["1.0.0"]), channel_version=1)
    assert refused("--strategy", "ab", "--release-b", "qs@1.0.0", code="INVALID_INPUT") == (
        "Error [INVALID_INPUT]: --release-b does not apply with --via: the devices are those reporting on the "
        "channel, placed by their cohort position")
    assert refused("--strategy", "regional", code="INVALID_INPUT") == (
        "Error [INVALID_INPUT]: --strategy 'regional' is not available with --via: the channel manifest carries one "
        "cohort range (direct, canary, progressive) (regional and A/B rollouts need the push path: devices in "
        "`edgegate fleet`)")
    assert refused("--target", "region=eu", code="INVALID_INPUT").startswith("Error [INVALID_INPUT]: --target does "
                                                                             "not apply with --via")
    rid = next(f"ro-{i}" for i in range(1000) if all(position(f"ro-{i}", d) >= 10_000 for d in SEED_DEVICES))
    assert refused("--canary", "1", "--id", rid, code="ZERO_DEVICE_STAGE") == (
        "Error [ZERO_DEVICE_STAGE]: stage 1% (cohort positions 0-10000 of 1000000) holds none of the 6 device(s) "
        "reporting on channel stable (use larger percentages, or another --id: it seeds the cohort positions)")
    # `start`: the channel must have a current release to come back to
    result = invoke("rollout", "start", "qs@1.1.0", "--via", root, "--canary", "50", expect=2)
    assert result.stderr.splitlines()[0] == (
        f"Error [INVALID_INPUT]: {root}/channels/stable.json: channel stable has no current release to roll back to "
        "(put one there first: `edgegate releases push NAME@VERSION s3://...`)")
    # no credentials: named, nothing done
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    assert refused(code="STORE_CREDENTIALS_MISSING").startswith(
        f"Error [STORE_CREDENTIALS_MISSING]: {root}: no S3 credentials were found")
    assert invoke("rollout", "list", "--json").stdout.count('"id"') == 0


def test_reports_the_box_does_not_trust_are_left_out(box):
    from edgegate_cli.objectstore import ObjectStore, parse_s3_url
    from edgegate_cli.rollout.reports import read_reports

    root, client, bucket, ids = box
    put_report(client, bucket, "dev-ok", active=("qs@1.0.0", ids["1.0.0"]), channel_version=1, latencies=30)
    put_report(client, bucket, "dev-beta", active=("qs@1.0.0", ids["1.0.0"]), channel_version=1, channel="beta")
    put_report(client, bucket, "dev-junk", active=None, channel_version=None, raw=b"\x00not json")
    put_report(client, bucket, "dev-liar", active=None, channel_version=None,
               doc={"report_format": 1, "device_id": "dev-ok", "channel": {"name": "stable"}})
    put_report(client, bucket, "dev-huge", active=None, channel_version=None, raw=b" " * (300 << 10))
    location = parse_s3_url(root)
    reports = read_reports(ObjectStore(location), location, "stable")
    assert sorted(reports.devices) == ["dev-ok"]  # dev-beta is on another channel: not ours, not an error
    assert reports.devices["dev-ok"].counters["qs@1.0.0"]["count"] == 30
    assert sorted(reports.unreadable) == ["dev-huge", "dev-junk", "dev-liar"]
    assert reports.unreadable["dev-junk"] == "not JSON"
    assert reports.unreadable["dev-liar"] == "the report names another device than its key"
    assert "more than the 262144 declared" in reports.unreadable["dev-huge"]


def test_an_unconfirmed_rollback_ends_failed_and_the_channel_carries_the_way_down(invoke, box):
    """Stage 0 is opened; no device ever reports the release: inconclusive until max-bake, then fail
    (INCONCLUSIVE_TIMEOUT) and the rollback is written to the channel. One device confirms it (back on
    1.0.0 having seen that channel version); the other never reports again: after the rollback deadline the
    rollout ends failed: ROLLBACK_INCOMPLETE, exit 3."""
    root, client, bucket, ids = box
    invoke("releases", "push", "qs@1.0.0", root)
    devices = ["dev-0", "dev-1", "dev-2", "dev-3"]
    for device in devices:
        put_report(client, bucket, device, active=("qs@1.0.0", ids["1.0.0"]), channel_version=1, latencies=40)
    plan = json.loads(invoke("rollout", "start", "qs@1.1.0", "--via", root, "--strategy", "progressive", "--steps",
                             "50", "--bake", "60", "--max-bake", "120", "--id", "ro-x", "--json").stdout)
    first = sorted(plan["stages"][0]["devices"])
    assert 1 <= len(first) < len(devices)
    t0 = datetime.now(UTC)

    def advance(minutes: float, expect: int) -> dict:
        now = dsse.format_utc(t0 + timedelta(minutes=minutes)).replace(".000000", "")
        return json.loads(invoke("rollout", "advance", "ro-x", "--now", now[:19] + "Z", "--json",
                                 expect=expect).stdout)["rollouts"][0]

    assert advance(0, 0)["status"] == "baking"
    doc = channel_doc(client, bucket)
    assert (doc["version"], doc["rollout"]["ranges"], doc["rollout"]["seed"]) == (2, [[0, 500_000]], "ro-x")
    assert doc["current"] == {"name": "qs", "version": "1.0.0"}
    waiting = advance(1.5, 0)
    assert waiting["status"] == "baking" and any("inconclusive (NOT_CONVERGED)" in a for a in waiting["actions"])
    rolled = advance(3, 1)
    assert (rolled["status"], rolled["reason"]) == ("rolling_back", "INCONCLUSIVE_TIMEOUT")
    doc = channel_doc(client, bucket)
    assert (doc["version"], doc["rollout"], doc["current"]) == (3, None, {"name": "qs", "version": "1.0.0"})
    (envelope,) = doc["rollbacks"]
    payload = json.loads(dsse.parse_envelope(envelope)[1])
    assert (payload["cohort"], payload["from_sha256"], payload["to_version"], payload["to_sha256"]) == \
        ("channel:stable", ids["1.1.0"], "1.0.0", ids["1.0.0"])
    assert cm.parse_channel_payload(dsse.parse_envelope(json.loads(client.get_object(
        Bucket=bucket, Key=f"{PREFIX}/channels/stable.json")["Body"].read()))[1], where="t").rollbacks
    # one stage device confirms (back on 1.0.0, having seen version 3); the others stay silent
    put_report(client, bucket, first[0], active=("qs@1.0.0", ids["1.0.0"]), channel_version=3)
    pending = advance(5, 1)
    assert pending["status"] == "rolling_back" and "not yet back" in pending["actions"][-1]
    failed = advance(3 + 11, 3)  # past the deadline: max(max-bake, 10 min) after the rollback began
    assert (failed["status"], failed["reason"]) == ("failed", "ROLLBACK_INCOMPLETE")
    states = {t["device_id"]: (t["state"], t["code"]) for t in
              json.loads(invoke("rollout", "status", "ro-x", "--json").stdout)["targets"]}
    assert states[first[0]] == ("skipped", None)  # it never took 1.1.0, and is on 1.0.0 past the rollback
    assert all(states[d] == ("rollback_failed", "ROLLBACK_TIMEOUT") for d in first[1:])
    assert all(states[d] == ("skipped", None) for d in devices if d not in first)
    assert channel_doc(client, bucket)["version"] == 3  # written once


def test_retry_is_refused_over_the_pull_path(invoke, box):
    root, client, bucket, ids = box
    invoke("releases", "push", "qs@1.0.0", root)
    for device in SEED_DEVICES:
        put_report(client, bucket, device, active=("qs@1.0.0", ids["1.0.0"]), channel_version=1)
    invoke("rollout", "start", "qs@1.1.0", "--via", root, "--strategy", "direct", "--id", "ro-r")
    result = invoke("rollout", "retry", "ro-r", expect=2)
    assert result.stderr.splitlines()[0] == (
        "Error [INVALID_INPUT]: rollout ro-r runs over the pull path: an agent that refused the release tries again "
        "when the channel changes (fix the cause, then abort and start a new rollout)")
    again = invoke("rollout", "start", "qs@1.1.0", "--via", root, "--strategy", "direct", "--id", "ro-s", expect=None)
    assert again.exit_code == 0  # the channel carries no rollout until `advance` writes it
    invoke("rollout", "advance", "ro-r")
    third = invoke("rollout", "start", "qs@1.1.0", "--via", root, "--strategy", "direct", "--id", "ro-t", expect=2)
    assert third.stderr.splitlines()[0] == (
        f"Error [INVALID_INPUT]: {root}/channels/stable.json: channel stable already carries rollout ro-r (finish or "
        "abort it first: `edgegate rollout abort ID`)")
