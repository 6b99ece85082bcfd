"""The signed channel manifest of the pull path: builder, strict parser, TUF-style freshness (expiry
against a fixed start time, a version that never decreases) and the cohort position."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import pytest

from edgegate_cli.canonical import canonical_json
from edgegate_cli.errors import InvalidInput, VerificationFailed
from edgegate_cli.evidence import channel_manifest as cm
from edgegate_cli.evidence import release_manifest as rm
from edgegate_cli.evidence.keys import signer_from_seed

SIGNER = signer_from_seed(bytes(range(32)))
OTHER = signer_from_seed(bytes(range(1, 33)))
TRUSTED = {SIGNER.key_id: (SIGNER.public_key, None)}
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
H = "sha256:" + "a" * 64


def entry(version: str, name: str = "quickstart") -> dict:
    return {"name": name, "version": version, "identity": "sha256:" + hashlib.sha256(version.encode()).hexdigest(),
            "manifest": {"sha256": H, "size": 900}, "evidence": None}


def channel(**overrides) -> dict:
    fields = dict(channel="stable", version=3, issued_at="2026-06-01T11:00:00.000000Z",
                  expires_at="2026-06-08T11:00:00.000000Z", publisher=SIGNER.key_id,
                  releases=[entry("1.0.0"), entry("1.1.0")], current={"name": "quickstart", "version": "1.0.0"},
                  rollout={"id": "ro-1", "release": {"name": "quickstart", "version": "1.1.0"}, "seed": "s" * 32,
                           "ranges": [[0, 333334]]})
    fields.update(overrides)
    return cm.build_channel(**fields)


def verify(envelope, trusted=TRUSTED, **options) -> cm.ChannelManifest:
    return cm.verify_channel_envelope(envelope, trusted, now=NOW, where="channel", **options)


def refusal(envelope, trusted=TRUSTED, **options) -> tuple[str, str]:
    with pytest.raises(VerificationFailed) as exc:
        verify(envelope, trusted, **options)
    return exc.value.code, exc.value.message


def test_round_trip_and_canonical_payload():
    env = cm.sign_channel(channel(), SIGNER)
    assert env["payloadType"] == "application/vnd.edgegate.channel+json"
    assert base64.b64decode(env["payload"]) == canonical_json(channel())
    m = verify(env, channel="stable")
    assert (m.channel, m.version, m.current, m.publisher) == ("stable", 3, ("quickstart", "1.0.0"), SIGNER.key_id)
    assert [r.ref for r in m.releases] == ["quickstart@1.0.0", "quickstart@1.1.0"]
    assert m.rollout == cm.Rollout("ro-1", "quickstart", "1.1.0", "s" * 32, ((0, 333334),))
    assert m.payload_sha256 == "sha256:" + hashlib.sha256(canonical_json(channel())).hexdigest()
    assert m.cohort == "channel:stable"


def test_an_expired_channel_is_refused_against_the_fixed_start_time():
    """Expiry is checked against the `now` the caller fixed at the start of the update (TUF 5.1), one
    microsecond past it is already expired; the release box may read it to renew it."""
    env = cm.sign_channel(channel(expires_at="2026-06-01T12:00:00.000000Z"), SIGNER)
    code, message = refusal(env)
    assert code == "CHANNEL_EXPIRED"
    assert message == "channel: channel stable version 3 expired at 2026-06-01T12:00:00.000000Z"
    assert verify(env, allow_expired=True).version == 3


@pytest.mark.parametrize("seen,expected", [
    (None, True), ({"version": 2, "payload_sha256": H}, True), ({"version": 3, "payload_sha256": "same"}, False)])
def test_version_order_new_or_same(seen, expected):
    m = verify(cm.sign_channel(channel(), SIGNER))
    if seen and seen["payload_sha256"] == "same":
        seen = {**seen, "payload_sha256": m.payload_sha256}
    assert cm.check_version(m, seen, "channel") is expected


def test_a_lower_version_or_the_same_version_with_other_content_is_a_rollback():
    m = verify(cm.sign_channel(channel(version=3), SIGNER))
    with pytest.raises(VerificationFailed) as exc:
        cm.check_version(m, {"version": 4, "payload_sha256": H}, "channel")
    assert (exc.value.code, exc.value.message) == (
        "CHANNEL_ROLLBACK", "channel: channel stable version 3 is lower than version 4, already seen")
    with pytest.raises(VerificationFailed) as exc:
        cm.check_version(m, {"version": 3, "payload_sha256": H}, "channel")
    assert exc.value.code == "CHANNEL_ROLLBACK" and "already seen with other content" in exc.value.message


def test_signature_refusals_have_their_own_codes():
    env = cm.sign_channel(channel(), SIGNER)
    assert refusal(env, {OTHER.key_id: (OTHER.public_key, None)})[0] == "KEY_UNTRUSTED"
    assert refusal(env, {SIGNER.key_id: (SIGNER.public_key, "2026-01-01T00:00:00.000000Z")})[0] == "KEY_REVOKED"
    altered = dict(env, payload=base64.b64encode(canonical_json(channel(version=99))).decode())
    assert refusal(altered)[0] == "SIGNATURE_INVALID"


def test_a_release_envelope_is_not_a_channel_manifest_and_another_channel_is_refused():
    release = rm.sign_release({"_type": "x"}, SIGNER)  # signing does not parse; the payloadType differs
    code, message = refusal(release)
    assert code == "MANIFEST_INVALID" and "expected application/vnd.edgegate.channel+json" in message
    beta = cm.sign_channel(channel(channel="beta"), SIGNER)
    assert refusal(beta, channel="stable") == ("MANIFEST_INVALID", "channel: this is the manifest of channel beta, "
                                                                   "not stable")


def test_a_publisher_other_than_the_signer_is_refused():
    env = cm.sign_channel(channel(publisher=OTHER.key_id), SIGNER)
    assert refusal(env)[0] == "MANIFEST_INVALID"


@pytest.mark.parametrize("overrides,expected", [
    ({"version": 0}, "channel stable: version is 0, not a counter from 1"),
    ({"current": {"name": "quickstart", "version": "2.0.0"}},
     "channel stable: current names quickstart@2.0.0, which the releases list does not hold"),
    ({"releases": [entry("1.0.0"), entry("1.0.0")], "rollout": None}, "channel stable: releases lists a release twice"),
    ({"rollout": {"id": "ro-1", "release": {"name": "quickstart", "version": "1.1.0"}, "seed": "s",
                  "ranges": [[0, 500000], [400000, 600000]]}},
     "channel stable: rollout.ranges[1] is [400000, 600000], not [lo, hi] with lo < hi, in order, without overlap, "
     "within 0..1000000"),
    ({"rollout": {"id": "ro-1", "release": {"name": "quickstart", "version": "1.1.0"}, "seed": "s",
                  "ranges": [[0, 1000001]]}}, "channel stable: rollout.ranges[0] is [0, 1000001]"),
    ({"expires_at": "2026-06-01T10:00:00.000000Z"}, "channel stable: expires_at 2026-06-01T10:00:00.000000Z is "
                                                    "not after issued_at"),
    ({"channel": "Stable"}, "channel Stable: channel is Stable, not a name of [a-z0-9._-]"),
])
def test_builder_refuses_bad_fields(overrides, expected):
    with pytest.raises(InvalidInput) as exc:
        channel(**overrides)
    assert exc.value.message.startswith(expected)


def test_payload_must_be_canonical_and_complete():
    doc = channel()
    loose = json.dumps(doc).encode()  # not the canonical form
    with pytest.raises(VerificationFailed, match="not the canonical JSON"):
        cm.parse_channel_payload(loose, where="c")
    del doc["rollbacks"]
    with pytest.raises(VerificationFailed, match=r"missing field\(s\) \['rollbacks'\]"):
        cm.parse_channel_payload(canonical_json(doc), where="c")


def test_cohort_position_is_sha256_of_seed_then_device_id():
    """Computed independently here: the first 8 bytes of sha256(seed ‖ device id), scaled to millionths."""
    for device in ("dev-1", "dev-2", "a" * 128):
        raw = int(hashlib.sha256(b"seed-1" + device.encode()).hexdigest()[:16], 16)
        assert cm.cohort_position("seed-1", device) == raw * 1_000_000 // 2**64
    assert cm.cohort_position("seed-1", "dev-1") != cm.cohort_position("seed-2", "dev-1")


def test_a_third_of_a_large_fleet_falls_in_a_third_of_the_range():
    rollout = cm.Rollout("ro-1", "q", "1.0.0", "seed", ((0, 333_334),))
    inside = sum(rollout.includes(f"device-{i:05d}") for i in range(20_000))
    assert 0.32 < inside / 20_000 < 0.347


def test_desired_release_follows_the_rollout_cohort():
    m = verify(cm.sign_channel(channel(), SIGNER))
    devices = [f"dev-{i}" for i in range(30)]
    inside = [d for d in devices if cm.cohort_position("s" * 32, d) < 333334]
    assert 0 < len(inside) < len(devices)
    for device in devices:
        release, rollout_id = m.desired_for(device)
        assert (release.version, rollout_id) == (("1.1.0", "ro-1") if device in inside else ("1.0.0", None))
    no_rollout = verify(cm.sign_channel(channel(rollout=None), SIGNER))
    assert no_rollout.desired_for(inside[0])[0].version == "1.0.0"
    empty = verify(cm.sign_channel(channel(current=None, rollout=None), SIGNER))
    assert empty.desired_for("dev-1") == (None, None)
