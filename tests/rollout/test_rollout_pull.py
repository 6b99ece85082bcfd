"""Issue 15's Done-when for rollouts over the pull path, with a real store (SeaweedFS) and 3 real agents
polling it: 1.0.0 is pushed to the store and the agents converge; `rollout start --via` + `rollout
advance` run a canary of 1.1.0 over one third of the cohort hash range (only the device whose hash falls
in it moves), then promote it (every device converges on 1.1.0, now the channel's current release); a
canary of 1.2.0 — a model that really is slower — is rolled back automatically through the channel
manifest: exit 1, LATENCY_REGRESSION, every device back on 1.1.0. Every device state is what the agents
wrote to their status reports."""

from __future__ import annotations

import json

import pytest
from agent.models import linear_bytes, slow_bytes
from agent.pull_helpers import PREFIX, active_version, position, pull_agent, report, wait_reports

from rollout.helpers import Traffic

from .test_rollout_done_when import advance_until_finished

DEVICES = ["dev-a", "dev-b", "dev-c"]
THIRD = 333_334  # --canary 33.3334 %


def rollout_id_with(prefix: str, wanted) -> tuple[str, str]:
    """A rollout id (the cohort seed) that puts exactly one device of DEVICES in [0, THIRD), and that
    device; `wanted(device)` must hold for it."""
    for i in range(2000):
        rid = f"{prefix}-{i}"
        inside = [d for d in DEVICES if position(rid, d) < THIRD]
        if len(inside) == 1 and wanted(inside[0]):
            return rid, inside[0]
    raise AssertionError("no rollout id found")


@pytest.fixture
def pull_fleet(invoke, tmp_path, agent_factory, s3_server, s3_bucket, aws_env):
    """qs 1.0.0 / 1.1.0 / 1.2.0 (slowed) published here, 1.0.0 pushed to the store, 3 pull agents on it
    with inference traffic."""
    invoke("keys", "generate")
    pem = tmp_path / "publisher.pem"
    pem.write_text(json.loads(invoke("keys", "export", "--json").stdout)["public_key"])
    for version, model in (("1.0.0", linear_bytes(1)), ("1.1.0", linear_bytes(2)), ("1.2.0", slow_bytes(3))):
        path = tmp_path / f"model-{version}.onnx"
        path.write_bytes(model)
        invoke("publish", path, "--name", "qs", "--version", version, "--force")
    root = f"s3://{s3_bucket}/{PREFIX}"
    invoke("releases", "push", "qs@1.0.0", root)
    agents = [pull_agent(agent_factory, s3_server, s3_bucket, d, publisher_keys=[pem], require_evidence=False,
                         warmup=1) for d in DEVICES]
    client = s3_server.client()
    wait_reports(client, s3_bucket, DEVICES, lambda r: active_version(r) == "1.0.0", "1.0.0")
    traffic = Traffic(agents).start()
    yield root, client, s3_bucket
    traffic.stop()


def test_pull_rollout_canary_promote_and_automatic_rollback(invoke, pull_fleet):
    root, client, bucket = pull_fleet
    # the canary of 1.1.0: one device of three falls in the first third of the hash range
    rid, canary = rollout_id_with("ro-11", lambda d: True)
    plan = json.loads(invoke("rollout", "start", "qs@1.1.0", "--via", root, "--strategy", "canary", "--canary",
                             "33.3334", "--bake", "2", "--max-bake", "60", "--id", rid, "--json").stdout)
    assert [sorted(s["devices"]) for s in plan["stages"]] == [[canary], sorted(set(DEVICES) - {canary})]
    assert [s["range_hi"] for s in plan["stages"]] == [THIRD, 1_000_000]
    first = json.loads(invoke("rollout", "advance", rid, "--json").stdout)["rollouts"][0]
    assert first["status"] == "baking" and first["stage"] == 0
    version = json.loads(client.get_object(Bucket=bucket, Key=f"{PREFIX}/channels/stable.json")["Body"].read())
    reports = wait_reports(client, bucket, DEVICES, lambda r: r["poll"]["channel_version"] == 2 and (
        active_version(r) == "1.1.0" if r["device_id"] == canary else True), "the 1.1.0 canary")
    assert {d: active_version(r) for d, r in reports.items()} == {d: "1.1.0" if d == canary else "1.0.0"
                                                                  for d in DEVICES}
    assert reports[canary]["cohort"] == {"rollout_id": rid, "seed": rid, "in_rollout": True,
                                         "position": position(rid, canary)}
    assert version["payloadType"] == "application/vnd.edgegate.channel+json"

    code, doc = advance_until_finished(invoke, rid, timeout=120.0)
    assert (code, doc["status"]) == (0, "completed"), doc
    # channel versions: 1 (1.0.0 pushed), 2 (canary range), 3 (the whole range), 4 (1.1.0 current, no rollout)
    reports = wait_reports(client, bucket, DEVICES, lambda r: r["poll"]["channel_version"] == 4, "channel version 4")
    assert {d: active_version(r) for d, r in reports.items()} == {d: "1.1.0" for d in DEVICES}
    assert all(r["cohort"] is None for r in reports.values())
    status = json.loads(invoke("rollout", "status", rid, "--json").stdout)
    assert status["devices"] == {"succeeded": 3}
    explain = json.loads(invoke("rollout", "explain", rid, "--json").stdout)
    assert [s["outcome"] for s in explain["stages"]] == ["pass", "pass"]
    numbers = explain["stages"][0]["analysis"]["numbers"]
    assert numbers["baseline"].startswith("control cohort (2 device(s)") and numbers["devices"] == 1

    # a slowed 1.2.0: its canary rolls back through the channel manifest, automatically
    rid2, canary2 = rollout_id_with("ro-12", lambda d: True)
    invoke("rollout", "start", "qs@1.2.0", "--via", root, "--canary", "33.3334", "--bake", "2", "--max-bake", "60",
           "--id", rid2)
    code, doc = advance_until_finished(invoke, rid2, timeout=120.0)
    assert (code, doc["status"], doc["reason"]) == (1, "rolled_back", "LATENCY_REGRESSION"), doc
    reports = {d: report(client, bucket, d) for d in DEVICES}
    assert {d: active_version(r) for d, r in reports.items()} == {d: "1.1.0" for d in DEVICES}
    back = reports[canary2]
    assert (back["deployment"]["kind"], back["deployment"]["rollout_id"], back["previous"]["version"]) == \
        ("rollback", rid2, "1.2.0")
    assert back["highest"] == {"qs": "1.2.0"}  # a rollback never lowers the floor
    status = json.loads(invoke("rollout", "status", rid2, "--json").stdout)
    assert {t["device_id"]: t["state"] for t in status["targets"]} == {
        d: "rolled_back" if d == canary2 else "skipped" for d in DEVICES}
    numbers = json.loads(invoke("rollout", "explain", rid2, "--json").stdout)["stages"][0]["analysis"]["numbers"]
    assert numbers["candidate_p50_ms"] > 2 and numbers["baseline_p50_ms"] < 1 and numbers["p_value"] < 0.05
    channel = json.loads(client.get_object(Bucket=bucket, Key=f"{PREFIX}/channels/stable.json")["Body"].read())
    assert channel["payloadType"] == "application/vnd.edgegate.channel+json"
