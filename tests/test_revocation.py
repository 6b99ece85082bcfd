"""Issue 10, item 15: revocation is a fact of this home, not a claim of the signer.

A revoked (compromised) key's signatures all fail, whatever signing time the bundle claims, unless this home
recorded the bundle before the revocation; a rotated (retired) key's earlier bundles stay valid; a signing
time before the key was created here is always refused."""

from __future__ import annotations

import base64
import json

from bundle_evidence import entries, resign


def key_of(ev):
    """The bundles' signer, read from its key file (as whoever holds the file can, revoked or not)."""
    from edgegate_cli.evidence.keys import signer_from_seed

    return signer_from_seed(base64.b64decode((ev.home / "keys" / f"{ev.key_id}.key").read_text()))


def backdated(ev, tmp_path, signed_at: str, name: str = "old.zip"):
    """The pass bundle re-signed by its key, claiming another signing time (as an attacker holding the key would)."""
    summary = json.loads(entries(ev.pass_zip)["summary.json"])
    summary["predicate"]["signed_at"] = signed_at
    return resign(ev.pass_zip, tmp_path / name, key_of(ev), {"summary.json": json.dumps(summary).encode()})


def key_created(invoke, key_id) -> str:
    return next(k for k in json.loads(invoke("keys", "list", "--json").stdout)["keys"] if k["key_id"] == key_id)[
        "created_at"]


def test_a_revoked_key_cannot_backdate_a_bundle(invoke, ev, tmp_path):
    """The reported bypass: revoke, then a bundle claiming `created_at: 2020-01-01` — refused (KEY_REVOKED)."""
    invoke("keys", "revoke", ev.key_id)
    forged = backdated(ev, tmp_path, "2030-01-01T00:00:00.000000Z")  # after creation, before nothing
    result = invoke("verify", forged, expect=1)
    assert result.stderr.startswith(
        f"Error [KEY_REVOKED]: summary.dsse.json: key {ev.key_id} was revoked at ")
    assert result.stderr.endswith("; a revoked key's signatures are refused unless this home recorded the bundle "
                                  "before then (this home has no record of this bundle) (ask the publisher to sign "
                                  "it again with a current key)\n")


def test_a_signing_time_before_the_key_existed_is_always_refused(invoke, ev, tmp_path):
    forged = backdated(ev, tmp_path, "2020-01-01T00:00:00.000000Z")
    result = invoke("verify", forged, expect=1)
    assert result.stderr == (
        f"Error [VERIFICATION_FAILED]: summary.json: its signing time 2020-01-01T00:00:00.000000Z is before key "
        f"{ev.key_id} was created ({key_created(invoke, ev.key_id)}); a signature cannot predate its key\n")


def test_bundles_recorded_before_the_revocation_still_verify(invoke, ev, tmp_path):
    """The home wrote pass.zip before the key was revoked: it stays valid; a copy it never saw does not."""
    invoke("keys", "revoke", ev.key_id)
    assert invoke("verify", ev.pass_zip).stdout.startswith("VALID: ")
    unseen = resign(ev.pass_zip, tmp_path / "unseen.zip", key_of(ev),
                    {"report.md": b"# a bundle the home never saw\n"})
    assert invoke("verify", unseen, expect=1).stderr.startswith("Error [KEY_REVOKED]: ")


def test_a_revocation_moved_before_the_record_refuses_the_bundle(invoke, ev):
    invoke("keys", "revoke", ev.key_id, "--at", "2020-01-01T00:00:00Z")
    result = invoke("verify", ev.pass_zip, expect=1)
    assert result.stderr.startswith(f"Error [KEY_REVOKED]: summary.dsse.json: key {ev.key_id} was revoked at "
                                    "2020-01-01T00:00:00.000000Z; a revoked key's signatures are refused unless this "
                                    "home recorded the bundle before then (this home first recorded this bundle at ")


def test_verify_records_what_it_accepted_so_a_later_revocation_keeps_it(invoke, ev, tmp_path):
    """A bundle received and verified here before a revocation is a recorded fact too."""
    received = resign(ev.pass_zip, tmp_path / "received.zip", key_of(ev),
                      {"report.md": b"# received from CI\n"})
    assert invoke("verify", received).stdout.startswith("VALID: ")
    invoke("keys", "revoke", ev.key_id)
    assert invoke("verify", received).stdout.startswith("VALID: ")


def test_rotation_retires_the_old_key_and_its_bundles_stay_valid(invoke, ev, tmp_path):
    rotated = json.loads(invoke("keys", "rotate", "--json").stdout)
    assert rotated["retired_key"]["key_id"] == ev.key_id and rotated["retired_key"]["revoked_at"] is None
    listed = json.loads(invoke("keys", "list", "--json").stdout)
    assert listed["active"] == rotated["new_key"]["key_id"]
    assert "\tretired\t" in invoke("keys", "list").stdout
    unseen = resign(ev.pass_zip, tmp_path / "unseen.zip", key_of(ev), {"report.md": b"# older\n"})
    assert invoke("verify", unseen).stdout.startswith("VALID: ")  # signed (claims) before the retirement
    later = backdated(ev, tmp_path, "2999-01-01T00:00:00.000000Z", "later.zip")
    result = invoke("verify", later, expect=1)
    assert result.stderr == (f"Error [KEY_REVOKED]: summary.dsse.json: key {ev.key_id} was retired at "
                             f"{rotated['retired_key']['retired_at']}, before the signing time "
                             "2999-01-01T00:00:00.000000Z\n")
    assert invoke("bundle", "create", ev.passed, "--key", ev.key_id, expect=2).stderr.startswith(
        f"Error [INVALID_INPUT]: signing key {ev.key_id} was retired at ")


def test_the_golden_bundle_trusted_by_key_file_still_verifies(invoke):
    from conftest import REPO

    golden = REPO / "tests" / "data" / "golden"
    assert invoke("verify", golden / "golden-relative.zip", "--key", golden / "golden.pem").stdout.startswith("VALID")
