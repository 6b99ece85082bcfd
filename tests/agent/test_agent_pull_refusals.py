"""What a pull-mode agent refuses, against a real store (SeaweedFS) and a real agent process: untrusted
signers, expired and decreasing channel manifests (TUF's freshness rules, the floor surviving a restart),
objects whose bytes were replaced or run long in the bucket (nothing activated), and a store that goes
down (the agent keeps serving, backs off, and reports the errors when the store is back)."""

from __future__ import annotations

import json
import random

from s3_store import running_seaweedfs

from edgegate_cli.agent.pull_loop import MAX_BACKOFF, PullLoop

from .fixtures import PUBLISHER, STRANGER
from .models import linear_bytes
from .pull_helpers import (
    active_version,
    pull_agent,
    report,
    seen,
    upload_release,
    utc,
    wait_reports,
    write_channel,
)
from .releases import sha, write_release

QUICK = {"name": "quickstart"}


def polled_again(client, bucket: str, device: str, times: int = 3) -> dict:
    """Wait until the device has polled `times` more times; return its last report."""
    first = report(client, bucket, device)["poll"]["at"]
    stamps = {first}
    return wait_reports(client, bucket, [device], lambda r: stamps.add(r["poll"]["at"]) or len(stamps) > times,
                        f"{times} more polls")[device]


def refused_with(code: str, version: int):
    return lambda r: r["poll"]["status"] == "refused" and r["poll"]["code"] == code and \
        r["poll"]["channel_version"] in (None, version)


def test_untrusted_expired_and_decreasing_channels_are_refused(agent_factory, s3_server, s3_bucket, tmp_path):
    client, device = s3_server.client(), "dev-fresh"
    a = write_release(tmp_path / "a", PUBLISHER, version="1.0.0", models={"model.onnx": linear_bytes(1)})
    b = write_release(tmp_path / "b", PUBLISHER, version="1.1.0", models={"model.onnx": linear_bytes(2)})
    ea, eb = upload_release(client, s3_bucket, a), upload_release(client, s3_bucket, b)
    write_channel(client, s3_bucket, STRANGER, version=9, releases=[ea], current=QUICK | {"version": "1.0.0"})
    agent = pull_agent(agent_factory, s3_server, s3_bucket, device)
    r = wait_reports(client, s3_bucket, [device], refused_with("KEY_UNTRUSTED", 9), "KEY_UNTRUSTED")[device]
    assert r["poll"]["message"].endswith(f"signed by untrusted key {STRANGER.key_id}")
    assert r["active"] is None and r["channel"]["seen"] is None

    write_channel(client, s3_bucket, PUBLISHER, version=3, releases=[ea], current=QUICK | {"version": "1.0.0"},
                  issued_at=utc(days=-8), expires_at=utc(seconds=-1))
    wait_reports(client, s3_bucket, [device], refused_with("CHANNEL_EXPIRED", 3), "CHANNEL_EXPIRED")
    r = polled_again(client, s3_bucket, device)
    assert r["poll"]["code"] == "CHANNEL_EXPIRED" and r["active"] is None
    assert r["refusals"] == {"KEY_UNTRUSTED": 1, "CHANNEL_EXPIRED": 1}  # recorded once, not at every poll

    write_channel(client, s3_bucket, PUBLISHER, version=5, releases=[ea, eb], current=QUICK | {"version": "1.0.0"})
    r = wait_reports(client, s3_bucket, [device], lambda r: seen(5)(r) and active_version(r) == "1.0.0", "1.0.0")
    assert r[device]["channel"]["seen"]["payload_sha256"].startswith("sha256:")

    v5 = client.get_object(Bucket=s3_bucket, Key="edge/channels/stable.json")["Body"].read()
    write_channel(client, s3_bucket, PUBLISHER, version=4, releases=[ea, eb], current=QUICK | {"version": "1.1.0"})
    r = wait_reports(client, s3_bucket, [device], refused_with("CHANNEL_ROLLBACK", 4), "CHANNEL_ROLLBACK")[device]
    assert r["poll"]["message"].endswith("channel stable version 4 is lower than version 5, already seen")
    assert active_version(r) == "1.0.0" and r["channel"]["seen"]["version"] == 5

    write_channel(client, s3_bucket, PUBLISHER, version=6, releases=[ea, eb], current=QUICK | {"version": "1.1.0"})
    wait_reports(client, s3_bucket, [device], lambda r: seen(6)(r) and active_version(r) == "1.1.0", "1.1.0")

    # the floor is durable: after a restart, the old version 5 is still a rollback
    agent.stop()
    client.put_object(Bucket=s3_bucket, Key="edge/channels/stable.json", Body=v5)
    agent.start()
    r = wait_reports(client, s3_bucket, [device], refused_with("CHANNEL_ROLLBACK", 5), "CHANNEL_ROLLBACK again")
    assert active_version(r[device]) == "1.1.0" and r[device]["serving"]["version"] == "1.1.0"


def test_replaced_or_overlong_objects_activate_nothing(agent_factory, s3_server, s3_bucket, tmp_path):
    client, device = s3_server.client(), "dev-objects"
    model = linear_bytes(3)
    a = write_release(tmp_path / "a", PUBLISHER, version="1.0.0", models={"model.onnx": model})
    other = bytearray(model)
    other[-1] ^= 0xFF  # same length, other bytes
    ea = upload_release(client, s3_bucket, a, tamper={"model/model.onnx": bytes(other)})
    write_channel(client, s3_bucket, PUBLISHER, version=1, releases=[ea], current=QUICK | {"version": "1.0.0"})
    agent = pull_agent(agent_factory, s3_server, s3_bucket, device)
    r = wait_reports(client, s3_bucket, [device], refused_with("DIGEST_MISMATCH", 1), "DIGEST_MISMATCH")[device]
    assert r["poll"]["message"].startswith(f"model/model.onnx: s3://{s3_bucket}/edge/blobs/sha256/{sha(model)}: "
                                           "sha256 is ")
    r = polled_again(client, s3_bucket, device)
    assert r["active"] is None and r["refusals"] == {"DIGEST_MISMATCH": 1}  # not fetched again for this manifest
    assert not agent.state_dir.joinpath("blobs", "sha256", sha(model)[:2], sha(model)[2:]).exists()

    longer = write_release(tmp_path / "c", PUBLISHER, version="1.0.1", models={"model.onnx": linear_bytes(4)})
    ec = upload_release(client, s3_bucket, longer, tamper={"model/model.onnx": linear_bytes(4) + b"\0" * 64})
    write_channel(client, s3_bucket, PUBLISHER, version=2, releases=[ea, ec], current=QUICK | {"version": "1.0.1"})
    r = wait_reports(client, s3_bucket, [device], refused_with("LENGTH_MISMATCH", 2), "LENGTH_MISMATCH")[device]
    assert f"the store holds {len(linear_bytes(4)) + 64} bytes, more than the {len(linear_bytes(4))} declared" \
        in r["poll"]["message"]
    assert r["active"] is None

    # mix and match: the channel names 1.0.2 but points at 1.0.0's signed manifest
    mixed = {**ea, "version": "1.0.2"}
    write_channel(client, s3_bucket, PUBLISHER, version=3, releases=[ea, mixed], current=QUICK | {"version": "1.0.2"})
    r = wait_reports(client, s3_bucket, [device], refused_with("MANIFEST_INVALID", 3), "MANIFEST_INVALID")[device]
    assert r["poll"]["message"].endswith(f"the channel lists quickstart@1.0.2 ({a.identity}) on stable, but its "
                                         f"manifest is quickstart@1.0.0 ({a.identity}) on stable")

    upload_release(client, s3_bucket, a)  # the right bytes back under the address; a new channel version
    write_channel(client, s3_bucket, PUBLISHER, version=4, releases=[ea, ec], current=QUICK | {"version": "1.0.0"})
    r = wait_reports(client, s3_bucket, [device], lambda r: seen(4)(r) and active_version(r) == "1.0.0", "1.0.0")
    assert r[device]["active"]["sha256"] == a.identity


def test_a_store_outage_keeps_the_agent_serving_and_is_reported_when_it_ends(agent_factory, tmp_path):
    with running_seaweedfs(tmp_path / "weed") as server:
        client = server.client()
        client.create_bucket(Bucket="fleet")
        a = write_release(tmp_path / "a", PUBLISHER, version="1.0.0", models={"model.onnx": linear_bytes(5)})
        write_channel(client, "fleet", PUBLISHER, version=1, releases=[upload_release(client, "fleet", a)],
                      current=QUICK | {"version": "1.0.0"})
        agent = pull_agent(agent_factory, server, "fleet", "dev-outage")
        wait_reports(client, "fleet", ["dev-outage"], lambda r: active_version(r) == "1.0.0", "1.0.0")
        server.stop()
        _wait_logged(agent, "error STORE_UNREACHABLE")  # a poll failed: the store is really down
        with agent.client() as http:
            for _ in range(20):  # and inference goes on
                assert http.post("/v1/infer", json={"inputs": {"x": [[0.1] * 8]}}).status_code == 200
            assert http.get("/v1/status").json()["serving"]["version"] == "1.0.0"
        server.start_again()
        client = server.client()
        # the first report that gets through may follow a poll that failed just before the store was back:
        # wait for one after a poll that worked, which still lists the outage
        r = wait_reports(client, "fleet", ["dev-outage"], lambda r: r["errors"] != [] and r["poll"]["status"] == "ok",
                         "a report of the outage")
        errors = r["dev-outage"]["errors"]
        assert {e["code"] for e in errors} == {"STORE_UNREACHABLE"}
        assert all(e["status"] == "error" and "did not answer" in e["message"] for e in errors)
        assert r["dev-outage"]["poll"]["status"] == "ok" and active_version(r["dev-outage"]) == "1.0.0"
        wait_reports(client, "fleet", ["dev-outage"], lambda r: r["errors"] == [],
                     "the errors dropped ten poll intervals after the outage")
        agent.stop()


def _wait_logged(agent, text: str, timeout: float = 60.0) -> None:
    """Wait (bounded) until the agent's log holds `text`."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in agent.log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the agent's log within {timeout} s:\n{agent.log.read_text()[-3000:]}")


def test_the_poll_interval_is_jittered_and_backs_off_while_the_store_fails():
    loop = PullLoop(None, 10.0, None, rng=random.Random(7))
    delays = []
    for failures in (0, 0, 1, 2, 3, 4, 10):
        loop.failures = failures
        delays.append((failures, loop.delay()))
    for failures, delay in delays:
        factor = min(2 ** failures, MAX_BACKOFF) if failures else 1
        assert 8.0 * factor <= delay <= 12.0 * factor
    assert delays[0][1] != delays[1][1]  # jittered


def test_missing_credentials_stop_the_agent_at_start(agent_factory, s3_server, s3_bucket, tmp_path):
    """A real `agent serve --channel s3://…` with no credentials anywhere in the AWS chain: exit 2, one
    line naming what is missing, no traceback, nothing served."""
    import os
    import subprocess
    import sys

    from .pull_helpers import channel_url

    agent = agent_factory(start=False, device_id="dev-nocreds")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"AWS_ENDPOINT_URL": s3_server.endpoint_url, "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    proc = subprocess.run([sys.executable, "-m", "edgegate_cli.cli", "agent", "serve", "--config", str(agent.config),
                           "--channel", channel_url(s3_bucket), "--poll", "5"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (f"Error [STORE_CREDENTIALS_MISSING]: s3://{s3_bucket}/edge/channels/stable.json: no S3 "
                           "credentials were found (looked for AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
                           "~/.aws/credentials and ~/.aws/config) (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                           "or AWS_PROFILE with a profile in ~/.aws/credentials)\n")
    assert not agent.state_dir.exists()  # it never started


def test_channel_arguments_are_checked(invoke, agent_factory, s3_bucket, aws_env):
    agent = agent_factory(start=False, device_id="dev-args")
    result = invoke("agent", "serve", "--config", agent.config, "--channel", f"s3://{s3_bucket}/edge/stable.json",
                    expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: s3://{s3_bucket}/edge/stable.json: a channel URL ends in "
                             "/channels/<channel>.json (e.g. s3://BUCKET/PREFIX/channels/stable.json (the URL "
                             "`releases push` prints))\n")
    result = invoke("agent", "serve", "--config", agent.config, "--channel", f"s3://{s3_bucket}/edge/channels/"
                    "stable.json", "--poll", "30", "--check", "--json")
    assert json.loads(result.stdout)["channel"] == f"s3://{s3_bucket}/edge/channels/stable.json"
    slash = agent_factory(start=False, device_id="line-3/dev-1")
    result = invoke("agent", "serve", "--config", slash.config, "--channel", f"s3://{s3_bucket}/edge/channels/"
                    "stable.json", expect=2)
    assert result.stderr.startswith("Error [INVALID_INPUT]: device id 'line-3/dev-1' cannot name a status object")
