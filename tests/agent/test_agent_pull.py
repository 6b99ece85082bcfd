"""Agents in pull mode against a real S3-compatible store (SeaweedFS): `edgegate publish --to` puts 1.0.0
on the store and three real agents converge on it; then the release box's channel writer
(registry/channel.py) runs a canary of 1.1.0 for a third of the hash range, promotes it, runs a canary
of 1.2.0 and rolls it back with a signed directive carried by the channel manifest. Every state is read
from the agents' own status reports in the bucket."""

from __future__ import annotations

import secrets

from conftest import REPO

from edgegate_cli.evidence import rollback_directive as rd

from .fixtures import PUBLISHER
from .models import linear_bytes
from .pull_helpers import PREFIX, active_version, position, pull_agent, seen, upload_release, utc, wait_reports
from .releases import write_release

MODEL = REPO / "examples" / "quickstart" / "model.onnx"
DEVICES = ["dev-a", "dev-b", "dev-c"]
THIRD = 333_334


def seed_with_one_inside(prefix: str) -> tuple[str, str]:
    """A seed that puts exactly one of DEVICES in [0, THIRD), and that device."""
    for i in range(1000):
        seed = f"{prefix}-{i}"
        inside = [d for d in DEVICES if position(seed, d) < THIRD]
        if len(inside) == 1:
            return seed, inside[0]
    raise AssertionError("no seed found")


def box(ev, bucket: str):
    """The release box's side: a workspace on the evidence home, its signer and the store."""
    from edgegate_cli.evidence.keys import load_signing_key
    from edgegate_cli.objectstore import ObjectStore, parse_s3_url
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    ws = open_workspace(Home(ev.home, "--home"), reap=False)
    store = ObjectStore(parse_s3_url(f"s3://{bucket}/{PREFIX}"))
    return ws, load_signing_key(ws), store


def test_agents_converge_run_canaries_promote_and_roll_back(invoke, ev, pki, agent_factory, s3_server, s3_bucket,
                                                            aws_env, tmp_path):
    from edgegate_cli.registry.channel import (
        promote_rollout,
        update_channel,
        with_release,
        with_rollbacks,
        with_rollout,
    )

    client = s3_server.client()
    invoke("publish", MODEL, "--name", "quickstart", "--version", "1.0.0", "--bundle", ev.pass_zip,
           "--to", f"s3://{s3_bucket}/{PREFIX}")
    agents = {d: pull_agent(agent_factory, s3_server, s3_bucket, d, publisher_keys=[ev.pem, pki.publisher_pem])
              for d in DEVICES}
    reports = wait_reports(client, s3_bucket, DEVICES, lambda r: active_version(r) == "1.0.0", "1.0.0")
    assert {r["channel"]["seen"]["version"] for r in reports.values()} == {1}
    assert all(r["poll"]["status"] == "ok" and r["cohort"] is None for r in reports.values())

    ws, signer, store = box(ev, s3_bucket)
    r11 = write_release(tmp_path / "r11", PUBLISHER, version="1.1.0", models={"model.onnx": linear_bytes(11)})
    r12 = write_release(tmp_path / "r12", PUBLISHER, version="1.2.0", models={"model.onnx": linear_bytes(12)})

    # canary of 1.1.0 at one third of the hash range: only the device whose hash falls in it moves
    seed, canary = seed_with_one_inside("ro-1")
    entry11 = upload_release(client, s3_bucket, r11)  # objects first ...
    update = update_channel(ws, store, store.location, "stable", signer, lambda b: with_rollout(  # ... channel last
        with_release(b, entry11, make_current=False), rollout_id="ro-1", name="quickstart", version="1.1.0",
        seed=seed, ranges=[[0, THIRD]]))
    assert update.version == 2
    reports = wait_reports(client, s3_bucket, DEVICES, lambda r: seen(2)(r) and (
        active_version(r) == "1.1.0" if r["device_id"] == canary else True), "the 1.1.0 canary")
    for device, r in reports.items():
        assert active_version(r) == ("1.1.0" if device == canary else "1.0.0"), device
        assert r["cohort"] == {"rollout_id": "ro-1", "seed": seed, "in_rollout": device == canary,
                               "position": position(seed, device)}
    assert reports[canary]["deployment"]["rollout_id"] == "ro-1"

    # promote: everyone converges on 1.1.0
    update_channel(ws, store, store.location, "stable", signer, promote_rollout)
    reports = wait_reports(client, s3_bucket, DEVICES, lambda r: active_version(r) == "1.1.0", "1.1.0 everywhere")
    assert all(r["highest"] == {"quickstart": "1.1.0"} for r in reports.values())

    # a canary of 1.2.0, then rolled back through the channel manifest
    seed, canary = seed_with_one_inside("ro-2")
    entry12 = upload_release(client, s3_bucket, r12)
    update_channel(ws, store, store.location, "stable", signer, lambda b: with_rollout(
        with_release(b, entry12, make_current=False), rollout_id="ro-2", name="quickstart", version="1.2.0",
        seed=seed, ranges=[[0, THIRD]]))
    reports = wait_reports(client, s3_bucket, DEVICES, lambda r: seen(4)(r) and (
        active_version(r) == "1.2.0" if r["device_id"] == canary else True), "the 1.2.0 canary")
    assert [d for d, r in reports.items() if active_version(r) == "1.2.0"] == [canary]
    deployments = {d: r["deployment"]["id"] for d, r in reports.items()}

    directive = rd.sign_rollback_directive(rd.build_rollback_directive(
        rollout_id="ro-2", cohort="channel:stable", from_sha256=r12.identity, to_name="quickstart",
        to_version="1.1.0", to_sha256=r11.identity, nonce=secrets.token_hex(16), issued_at=utc(),
        expires_at=utc(hours=1)), signer)
    update = update_channel(ws, store, store.location, "stable", signer, lambda b: with_rollbacks(
        b, [directive], current={"name": "quickstart", "version": "1.1.0"}))
    assert (update.version, update.rollout, update.current) == (5, None, "quickstart@1.1.0")
    reports = wait_reports(client, s3_bucket, DEVICES, lambda r: seen(5)(r) and active_version(r) == "1.1.0",
                           "the rollback")
    back = reports[canary]
    assert (back["deployment"]["kind"], back["deployment"]["status"], back["previous"]["version"]) == \
        ("rollback", "active", "1.2.0")
    assert back["highest"] == {"quickstart": "1.2.0"}  # a rollback never lowers the floor
    for device, r in reports.items():
        if device != canary:  # the directive's from_sha256 is not their model: nothing happened to them
            assert r["deployment"]["id"] == deployments[device] and r["highest"] == {"quickstart": "1.1.0"}
    assert all(r["refusals"] == {} and r["errors"] == [] for r in reports.values())
    with agents[canary].client() as http:
        assert http.post("/v1/infer", json={"inputs": {"x": [[0.5] * 8]}}).json()["model"]["version"] == "1.1.0"

