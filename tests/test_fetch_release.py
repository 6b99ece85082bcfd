"""The verified-download SDK: `fetch_release` from a channel on a real S3-compatible store (SeaweedFS) and
from a `releases export` directory — by name, version or digest; signatures, expiry, digests and lengths
checked; nothing in `dest` unless everything verified; a blob cache that saves the second download."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from agent.fixtures import PUBLISHER, STRANGER
from agent.models import linear_bytes
from agent.pull_helpers import channel_url, upload_release, utc, write_channel
from agent.releases import write_release

from edgegate_cli.download import fetch_release
from edgegate_cli.errors import (
    ChannelExpired,
    DigestMismatch,
    InvalidInput,
    KeyUntrusted,
    LengthMismatch,
    ManifestExpired,
    NotFound,
)

KEYS = {PUBLISHER.key_id: (PUBLISHER.public_key, None)}


@pytest.fixture
def channel(s3_server, s3_bucket, aws_env, tmp_path):
    """A bucket holding quickstart 1.0.0 (current), 1.1.0 and 0.9.0 on channel stable, version 3."""
    client = s3_server.client()
    releases = {v: write_release(tmp_path / "src" / v, PUBLISHER, version=v, models={"model.onnx": linear_bytes(i)})
                for i, v in enumerate(("0.9.0", "1.0.0", "1.1.0"))}
    entries = [upload_release(client, s3_bucket, r) for r in releases.values()]
    write_channel(client, s3_bucket, PUBLISHER, version=3, releases=entries,
                  current={"name": "quickstart", "version": "1.0.0"})
    return channel_url(s3_bucket), releases


def layout(directory) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_fetch_by_version_name_current_and_digest(channel, tmp_path):
    url, releases = channel
    got = fetch_release(url, "quickstart@1.1.0", keys=KEYS, dest=tmp_path / "a")
    r = releases["1.1.0"]
    assert (got.name, got.version, got.identity, got.channel_version) == ("quickstart", "1.1.0", r.identity, 3)
    assert got.model_path == tmp_path / "a" / "model" / "model.onnx"
    assert got.model_path.read_bytes() == linear_bytes(2) and got.downloaded_bytes == len(linear_bytes(2))
    assert set(layout(tmp_path / "a")) == {"release.dsse.json", "model/model.onnx"}
    assert fetch_release(url, "quickstart", keys=KEYS, dest=tmp_path / "b").version == "1.1.0"  # newest
    assert fetch_release(url, keys=KEYS, dest=tmp_path / "c").version == "1.0.0"  # the channel's current
    assert fetch_release(url, digest=releases["0.9.0"].identity, keys=KEYS, dest=tmp_path / "d").version == "0.9.0"
    with pytest.raises(NotFound) as exc:
        fetch_release(url, "quickstart@2.0.0", keys=KEYS, dest=tmp_path / "e")
    assert "has no quickstart@2.0.0" in exc.value.message and not (tmp_path / "e").exists()


def test_the_cache_saves_the_second_download_and_dest_is_reused(channel, tmp_path):
    url, _ = channel
    first = fetch_release(url, "quickstart@1.0.0", keys=KEYS, dest=tmp_path / "one", cache=tmp_path / "cache")
    assert first.downloaded_bytes == len(linear_bytes(1))
    second = fetch_release(url, "quickstart@1.0.0", keys=KEYS, dest=tmp_path / "two", cache=tmp_path / "cache")
    assert second.downloaded_bytes == 0 and layout(tmp_path / "two") == layout(tmp_path / "one")
    again = fetch_release(url, "quickstart@1.0.0", keys=KEYS, dest=tmp_path / "one")  # already there: verified
    assert again.downloaded_bytes == 0
    with pytest.raises(InvalidInput, match="holds another release"):
        fetch_release(url, "quickstart@1.1.0", keys=KEYS, dest=tmp_path / "one")


def test_replaced_or_overlong_objects_leave_nothing(channel, s3_server, s3_bucket, tmp_path):
    url, releases = channel
    client = s3_server.client()
    model = linear_bytes(1)
    key = f"edge/blobs/sha256/{hashlib.sha256(model).hexdigest()}"
    client.put_object(Bucket=s3_bucket, Key=key, Body=bytes(reversed(model)))
    with pytest.raises(DigestMismatch):
        fetch_release(url, "quickstart@1.0.0", keys=KEYS, dest=tmp_path / "x", cache=tmp_path / "cache")
    client.put_object(Bucket=s3_bucket, Key=key, Body=model + b"tail")
    with pytest.raises(LengthMismatch):
        fetch_release(url, "quickstart@1.0.0", keys=KEYS, dest=tmp_path / "x", cache=tmp_path / "cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "src"]  # no dest, no staging left
    assert list((tmp_path / "cache").glob("sha256/*/*")) == []


def test_channel_and_release_freshness_and_trust(channel, s3_server, s3_bucket, tmp_path):
    url, releases = channel
    client = s3_server.client()
    entry = upload_release(client, s3_bucket, releases["1.0.0"])
    write_channel(client, s3_bucket, PUBLISHER, version=4, releases=[entry], current=None,
                  issued_at=utc(days=-9), expires_at=utc(days=-2))
    with pytest.raises(ChannelExpired):
        fetch_release(url, "quickstart@1.0.0", keys=KEYS, dest=tmp_path / "x")
    write_channel(client, s3_bucket, STRANGER, version=5, releases=[entry], current=None)
    with pytest.raises(KeyUntrusted):
        fetch_release(url, "quickstart@1.0.0", keys=KEYS, dest=tmp_path / "x")
    old = write_release(tmp_path / "old", PUBLISHER, version="0.1.0", models={"model.onnx": linear_bytes(9)},
                        expires_at=utc(seconds=-1))
    write_channel(client, s3_bucket, PUBLISHER, version=6, releases=[upload_release(client, s3_bucket, old)],
                  current={"name": "quickstart", "version": "0.1.0"})
    with pytest.raises(ManifestExpired):
        fetch_release(url, keys=KEYS, dest=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_from_an_export_directory(tmp_path):
    release = write_release(tmp_path / "export", PUBLISHER, version="1.0.0", models={"model.onnx": linear_bytes(7)},
                            reference=(b"inputs", b"outputs"))
    pem = tmp_path / "publisher.pem"
    from edgegate_cli.evidence import dsse

    pem.write_text(dsse.public_key_pem(PUBLISHER.public_key))
    got = fetch_release(release.dir, keys=[pem], dest=tmp_path / "dest")
    assert layout(tmp_path / "dest") == layout(release.dir) and got.channel_version is None
    with pytest.raises(NotFound, match="holds quickstart@1.0.0"):
        fetch_release(release.dir, "quickstart@2.0.0", keys=[pem], dest=tmp_path / "other")
    shutil.rmtree(tmp_path / "dest")
    (release.dir / "reference" / "outputs.npz").write_bytes(b"OUTPUTS")  # same length, other bytes
    with pytest.raises(DigestMismatch):
        fetch_release(release.dir, keys=[pem], dest=tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
