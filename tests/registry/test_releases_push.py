"""`releases push` and `publish --to` against a real S3-compatible store (SeaweedFS): content-addressed
objects first, the signed channel manifest last, versions that never go down, credentials from the
standard AWS chain only."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from release_helpers import error_line, publish
from s3_store import identity, running_seaweedfs

from edgegate_cli.evidence import channel_manifest as cm


def keys_of(s3_server, bucket: str) -> list[str]:
    pages = s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def read_channel(s3_server, bucket: str, ev, key: str = "edge/channels/stable.json") -> cm.ChannelManifest:
    """The channel manifest in the bucket, verified with the publisher's exported public key."""
    from datetime import UTC, datetime

    from edgegate_cli.evidence import dsse

    key_id, raw = dsse.read_public_key_file(ev.pem)
    envelope = json.loads(s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    return cm.verify_channel_envelope(envelope, {key_id: (raw, None)}, now=datetime.now(UTC), where=key)


def push_json(invoke, *args, expect: int = 0) -> dict:
    return json.loads(invoke("releases", "push", *args, "--json", expect=expect).stdout)


def test_push_uploads_content_addressed_objects_then_a_signed_channel(invoke, ev, s3_server, s3_bucket, aws_env):
    publish(invoke, "--bundle", ev.pass_zip)
    result = push_json(invoke, "quickstart@1.0.0", f"s3://{s3_bucket}/edge")
    assert (result["objects"], result["uploaded"]) == (result["objects"], result["objects"])
    channel = result["channel"]
    assert (channel["channel"], channel["version"], channel["current"], channel["previous_version"]) == \
        ("stable", 1, "quickstart@1.0.0", None)
    assert channel["url"] == f"s3://{s3_bucket}/edge/channels/stable.json"
    keys = keys_of(s3_server, s3_bucket)
    blobs = [k for k in keys if k.startswith("edge/blobs/sha256/")]
    assert keys == sorted(blobs + ["edge/channels/stable.json"]) and len(blobs) == result["objects"]
    client = s3_server.client()
    for key in blobs:  # every object is exactly the bytes its key names, marked immutable for caches
        got = client.get_object(Bucket=s3_bucket, Key=key)
        assert hashlib.sha256(got["Body"].read()).hexdigest() == key.rsplit("/", 1)[1]
    manifest = read_channel(s3_server, s3_bucket, ev)
    assert (manifest.version, manifest.current, manifest.rollout, manifest.publisher) == \
        (1, ("quickstart", "1.0.0"), None, ev.key_id)
    (entry,) = manifest.releases
    envelope = client.get_object(Bucket=s3_bucket, Key=f"edge/blobs/sha256/{entry.manifest_sha256[7:]}")
    assert json.loads(envelope["Body"].read())["payloadType"] == "application/vnd.edgegate.release+json"
    assert entry.evidence is not None and f"edge/blobs/sha256/{entry.evidence['sha256'][7:]}" in blobs


def test_pushing_again_sends_nothing_new_and_the_version_only_goes_up(invoke, ev, s3_server, s3_bucket, aws_env):
    url = f"s3://{s3_bucket}/edge"
    publish(invoke, "--bundle", ev.pass_zip)
    first = push_json(invoke, "quickstart@1.0.0", url)
    again = push_json(invoke, "quickstart@1.0.0", url, "--channel-expires-in", "36h")
    assert (again["uploaded"], again["bytes_uploaded"], again["channel"]["version"]) == (0, 0, 2)
    for result, hours in ((first, 7 * 24), (again, 36)):
        issued, expires = (datetime.fromisoformat(result["channel"][k]) for k in ("issued_at", "expires_at"))
        assert expires - issued == timedelta(hours=hours)
    # publish --to: only the new release manifest is sent (the model bytes are the same)
    out = json.loads(publish(invoke, "--bundle", ev.pass_zip, "--to", url, "--json", version="1.1.0").stdout)
    assert (out["pushed"]["uploaded"], out["pushed"]["channel"]["version"]) == (1, 3)
    manifest = read_channel(s3_server, s3_bucket, ev)
    assert manifest.current == ("quickstart", "1.1.0")
    assert [r.ref for r in manifest.releases] == ["quickstart@1.0.0", "quickstart@1.1.0"]
    # the channel object deleted (or replaced by an old copy) in the bucket: the home's audit keeps the floor
    s3_server.client().delete_object(Bucket=s3_bucket, Key="edge/channels/stable.json")
    assert push_json(invoke, "quickstart@1.1.0", url)["channel"]["version"] == 4
    # a lower version cannot become current: agents would refuse it
    result = invoke("releases", "push", "quickstart@1.0.0", url, expect=2)
    assert error_line(result) == ("Error [INVALID_INPUT]: quickstart@1.0.0 is below quickstart@1.1.0, the channel's "
                                  "current release (agents refuse a lower version (DOWNGRADE); go back with a "
                                  "rollout's rollback)")
    assert read_channel(s3_server, s3_bucket, ev).version == 4


def test_the_channel_is_written_last(invoke, ev, tmp_path, monkeypatch, aws_env):
    """Credentials that may write blobs but not the channel: every object arrives, the push fails on the
    manifest (STORE_DENIED, exit 2), and readers still see the previous, complete channel."""
    entry, access, secret = identity("blobs-only", ["Read:fleet", "List:fleet", "Write:fleet/edge/blobs/*"])
    publish(invoke, "--bundle", ev.pass_zip)
    publish(invoke, "--bundle", ev.pass_zip, version="1.1.0")
    with running_seaweedfs(tmp_path / "weed", extra_identities=[entry]) as server:
        server.client().create_bucket(Bucket="fleet")
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        invoke("releases", "push", "quickstart@1.0.0", "s3://fleet/edge")
        before = server.client().get_object(Bucket="fleet", Key="edge/channels/stable.json")["Body"].read()
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", access)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        result = invoke("releases", "push", "quickstart@1.1.0", "s3://fleet/edge", expect=2)
        assert error_line(result).startswith("Error [STORE_DENIED]: s3://fleet/edge/channels/stable.json: ")
        assert secret not in result.stderr and access not in result.stdout
        admin = server.client()
        assert admin.get_object(Bucket="fleet", Key="edge/channels/stable.json")["Body"].read() == before
        blobs = {k for k in keys_of(server, "fleet") if k.startswith("edge/blobs/")}
        assert len(blobs) == 6  # one model, one bundle, reference inputs and outputs, two release manifests
        server.delete_bucket("fleet")


def test_missing_credentials_stop_before_anything_is_done(invoke, ev, aws_env, monkeypatch, s3_bucket):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    result = publish(invoke, "--bundle", ev.pass_zip, "--to", f"s3://{s3_bucket}/edge", expect=2)
    line = error_line(result)
    assert line == (f"Error [STORE_CREDENTIALS_MISSING]: s3://{s3_bucket}/edge: no S3 credentials were found (looked "
                    "for AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials and ~/.aws/config) "
                    "(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a profile in "
                    "~/.aws/credentials)")
    assert json.loads(invoke("releases", "list", "--json").stdout)["releases"] == []  # nothing was published
    publish(invoke, "--bundle", ev.pass_zip)
    result = invoke("releases", "push", "quickstart@1.0.0", f"s3://{s3_bucket}/edge", "--json", expect=2)
    assert json.loads(result.stdout)["error"]["code"] == "STORE_CREDENTIALS_MISSING"


def test_bad_arguments_are_refused(invoke, ev, aws_env, s3_bucket):
    publish(invoke, "--bundle", ev.pass_zip)
    assert error_line(invoke("releases", "push", "quickstart@1.0.0", "https://example.com/x", expect=2)) == \
        "Error [INVALID_INPUT]: 'https://example.com/x' is not an s3:// URL (write it as s3://BUCKET/PREFIX)"
    assert "--channel-expires-in '7 days' is not a duration like 7d, 36h, 90m or 3600s" in error_line(invoke(
        "releases", "push", "quickstart@1.0.0", f"s3://{s3_bucket}/e", "--channel-expires-in", "7 days", expect=2))
    assert error_line(invoke("releases", "push", "quickstart@9.9.9", f"s3://{s3_bucket}/e", expect=2)) \
        .startswith("Error [NOT_FOUND]: ")


def test_a_channel_this_home_cannot_verify_is_not_overwritten(invoke, ev, s3_server, s3_bucket, aws_env):
    from edgegate_cli.evidence.keys import signer_from_seed

    stranger = signer_from_seed(bytes(range(50, 82)))
    doc = cm.build_channel(channel="stable", version=40, issued_at="2026-01-01T00:00:00.000000Z",
                           expires_at="2099-01-01T00:00:00.000000Z", publisher=stranger.key_id, releases=[])
    forged = json.dumps(cm.sign_channel(doc, stranger)).encode()
    s3_server.client().put_object(Bucket=s3_bucket, Key="edge/channels/stable.json", Body=forged)
    publish(invoke, "--bundle", ev.pass_zip)
    result = invoke("releases", "push", "quickstart@1.0.0", f"s3://{s3_bucket}/edge", expect=1)
    assert error_line(result).startswith("Error [KEY_UNTRUSTED]: s3://")
    assert s3_server.client().get_object(Bucket=s3_bucket, Key="edge/channels/stable.json")["Body"].read() == forged
