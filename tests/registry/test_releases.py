"""`releases list|show|history|deprecate|delete`: semver order, the newest live version, the audit trail,
deletion refused while devices or rollouts need a release, and retention of release blobs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from release_helpers import error_line, open_home, publish, publish_json

VERSIONS = ["1.0.0", "1.10.0", "1.1.0-rc.1", "1.9.0", "1.1.0"]  # published in this order


def listed(invoke, *args) -> list[str]:
    doc = json.loads(invoke("releases", "list", "--json", *args).stdout)
    return [f"{r['name']}@{r['version']}" for r in doc["releases"]]


@pytest.fixture
def several(invoke, ev):
    for version in VERSIONS:
        publish(invoke, "--force", *(("--channel", "beta") if version == "1.10.0" else ()), version=version)
    publish(invoke, "--force", name="other", version="0.1.0")


def test_list_orders_by_semver_not_text(invoke, several):
    assert listed(invoke) == ["other@0.1.0", "quickstart@1.10.0", "quickstart@1.9.0", "quickstart@1.1.0",
                              "quickstart@1.1.0-rc.1", "quickstart@1.0.0"]
    assert listed(invoke, "--name", "quickstart")[:2] == ["quickstart@1.10.0", "quickstart@1.9.0"]
    assert listed(invoke, "--channel", "beta") == ["quickstart@1.10.0"]
    assert listed(invoke, "--name", "nothing") == []
    out = invoke("releases", "list").stdout
    assert "quickstart@1.10.0" in out and "beta" in out and "none" in out


def test_list_when_empty(invoke, ev):
    assert invoke("releases", "list").stdout == "No releases. Publish one with `edgegate publish`.\n"
    assert json.loads(invoke("releases", "list", "--json").stdout) == {"releases": []}


def test_show_name_is_the_newest_live_version(invoke, several):
    def shown(ref):
        return json.loads(invoke("releases", "show", ref, "--json").stdout)["release"]["version"]

    assert shown("quickstart") == "1.10.0"
    assert shown("quickstart@1.1.0-rc.1") == "1.1.0-rc.1"
    invoke("releases", "deprecate", "quickstart@1.10.0", "--reason", "wrong channel")
    assert shown("quickstart") == "1.9.0"
    assert shown("quickstart@1.10.0") == "1.10.0"  # a deprecated release is still there by name@version
    invoke("releases", "deprecate", "other@0.1.0", "--reason", "superseded")
    assert error_line(invoke("releases", "show", "other", expect=2)) == (
        "Error [NOT_FOUND]: release other: every version is deprecated; name one as NAME@VERSION (see `edgegate "
        "releases list`)")


def test_show_human(invoke, ev):
    publish(invoke, "--bundle", ev.pass_zip, "--compatible", "qcs6490")
    lines = invoke("releases", "show", "quickstart@1.0.0").stdout.splitlines()
    assert lines[0].startswith("quickstart@1.0.0 (active) on channel stable, published ") and lines[0].endswith(
        f" by {ev.key_id}")
    assert lines[2].startswith("    model.onnx  97,889 bytes  sha256:")
    assert lines[3].startswith(f"  evidence: passed for run {ev.passed} of quickstart on local:cpu, signed by "
                               f"{ev.key_id} (sha256:")
    assert "    PASS  latency_ms <= 250 on local:cpu" in lines
    assert "  reference data: inputs and outputs" in lines
    assert "  compatible: qcs6490; expires: never" in lines


def test_deprecate_is_audited_and_idempotent(invoke, ev):
    publish(invoke, "--force")
    out = invoke("releases", "deprecate", "quickstart@1.0.0", "--reason", "latency regression on qcs6490").stdout
    assert out.startswith("Deprecated quickstart@1.0.0 at ") and out.endswith(": latency regression on qcs6490\n")
    again = json.loads(invoke("releases", "deprecate", "quickstart@1.0.0", "--reason", "other", "--json").stdout)
    assert (again["status"], again["deprecated_reason"]) == ("deprecated", "latency regression on qcs6490")
    ws = open_home(ev.home)
    assert ws.db["audit_events"].count_where("event = 'release_deprecated'") == 1
    assert error_line(invoke("releases", "deprecate", "quickstart@1.0.0", "--reason", "bad\x1b[2J", expect=2)) == (
        "Error [INVALID_INPUT]: --reason is 'bad\\x1b[2J': give one line of 1-128 printable characters")
    assert error_line(invoke("releases", "deprecate", "quickstart", "--reason", "x", expect=2)) == (
        "Error [INVALID_INPUT]: quickstart names no version: give NAME@VERSION (e.g. quickstart@1.0.0)")
    assert error_line(invoke("releases", "deprecate", "quickstart@2.0.0", "--reason", "x", expect=2)) == (
        "Error [NOT_FOUND]: release quickstart@2.0.0 is not in this home (see `edgegate releases list --name "
        "quickstart`)")


def test_history_lists_every_event_of_a_name(invoke, ev):
    publish(invoke, "--force")
    publish(invoke, "--bundle", ev.pass_zip, version="1.0.1")
    invoke("releases", "deprecate", "quickstart@1.0.0", "--reason", "no evidence")
    invoke("releases", "delete", "quickstart@1.0.0")
    doc = json.loads(invoke("releases", "history", "quickstart", "--json").stdout)
    assert [(e["event"], e["version"]) for e in doc["events"]] == [
        ("published", "1.0.0"), ("forced", "1.0.0"), ("published", "1.0.1"), ("deprecated", "1.0.0"),
        ("deleted", "1.0.0")]
    assert doc["events"][3]["reason"] == "no evidence"
    assert error_line(invoke("releases", "history", "nothing", expect=2)) == (
        "Error [NOT_FOUND]: release nothing: no release of this name was ever published here (see `edgegate "
        "releases list`)")
    assert error_line(invoke("releases", "history", "../etc", expect=2)).startswith(
        "Error [INVALID_INPUT]: NAME is ../etc: use 1-64 of a-z")


def _add_device(ws, device_id, active=None, previous=None):
    with ws.db.conn:
        ws.db["devices"].insert({"device_id": device_id, "active_release": active, "previous_release": previous,
                                 "created_at": ws.db.now()})


def _add_rollout(ws, rollout_id, release, rollback=None, finished=False):
    with ws.db.conn:
        ws.db["rollouts"].insert({"id": rollout_id, "release": release, "rollback_release": rollback,
                                  "status": "completed" if finished else "canary", "created_at": ws.db.now(),
                                  "finished_at": ws.db.now() if finished else None})


def test_delete_is_refused_while_a_device_or_a_rollout_needs_the_release(invoke, ev):
    """The devices/rollouts tables are created by m005 with the columns registry/__init__.py documents."""
    publish(invoke, "--force")
    ws = open_home(ev.home)
    _add_device(ws, "dev-1", active="quickstart@1.0.0")

    def refusal():
        return error_line(invoke("releases", "delete", "quickstart@1.0.0", expect=2))

    hint = "(finish or abort the rollout, or move the devices to another release first)"
    assert refusal() == f"Error [RELEASE_IN_USE]: release quickstart@1.0.0 is in use: device dev-1 runs it {hint}"
    with ws.db.conn:
        ws.db.execute("UPDATE devices SET active_release = 'quickstart@2.0.0', previous_release = 'quickstart@1.0.0'")
    assert refusal() == (f"Error [RELEASE_IN_USE]: release quickstart@1.0.0 is in use: device dev-1 holds it as its "
                         f"rollback target {hint}")
    with ws.db.conn:
        ws.db.execute("DELETE FROM devices")
    _add_rollout(ws, "ro-1", "quickstart@1.0.0")
    _add_rollout(ws, "ro-2", "quickstart@2.0.0", rollback="quickstart@1.0.0")
    _add_rollout(ws, "ro-0", "quickstart@1.0.0", finished=True)
    assert refusal() == (f"Error [RELEASE_IN_USE]: release quickstart@1.0.0 is in use: rollout ro-1 (canary) targets "
                         f"it; rollout ro-2 (canary) targets it {hint}")
    assert ws.db["releases"].get(("quickstart", "1.0.0"))["deleted_at"] is None
    with ws.db.conn:
        ws.db.execute("UPDATE rollouts SET finished_at = ?, status = 'aborted'", [ws.db.now()])
    assert invoke("releases", "delete", "quickstart@1.0.0").stdout == (
        "Deleted quickstart@1.0.0 (its version stays reserved)\n")
    assert listed(invoke) == []
    assert error_line(invoke("releases", "show", "quickstart@1.0.0", expect=2)) == (
        "Error [NOT_FOUND]: release quickstart@1.0.0 is not in this home (deleted) (see `edgegate releases list "
        "--name quickstart`)")
    (event,) = [json.loads(e["detail_json"]) for e in ws.db["audit_events"].rows_where("event = 'release_deleted'")]
    assert (event["name"], event["version"]) == ("quickstart", "1.0.0")


def test_a_deleted_version_is_never_reused_with_other_bytes(invoke, ev):
    first = publish_json(invoke, "--force")
    invoke("releases", "delete", "quickstart@1.0.0")
    assert error_line(publish(invoke, "--bundle", ev.pass_zip, expect=2)) == (
        f"Error [RELEASE_EXISTS]: release quickstart@1.0.0 is already published with other content "
        f"({first['payload_sha256']}, deleted since); versions are immutable (publish a new version (e.g. bump "
        "the patch number))")
    restored = publish_json(invoke, "--force")  # the same bytes again: restored
    assert (restored["status"], restored["payload_sha256"]) == ("published", first["payload_sha256"])
    assert listed(invoke) == ["quickstart@1.0.0"]


def test_retention_keeps_release_blobs_until_the_release_is_deleted(invoke, ev):
    from edgegate_cli.store.retention import collect_garbage

    publish(invoke, "--bundle", ev.pass_zip)
    ws = open_home(ev.home)
    detail = json.loads(invoke("releases", "show", "quickstart@1.0.0", "--json").stdout)
    envelope = ws.db["releases"].get(("quickstart", "1.0.0"))["envelope_sha256"]
    outputs = detail["reference"]["outputs"]["sha256"].removeprefix("sha256:")
    later = datetime.now(UTC) + timedelta(days=90)  # every artifact has expired by then
    report = collect_garbage(ws.db, ws.cas, now=later)
    assert {envelope, outputs} & {i.sha256.removeprefix("sha256:") for i in report.removed} == set()
    assert ws.cas.exists(envelope) and ws.cas.exists(outputs)
    invoke("releases", "delete", "quickstart@1.0.0")
    removed = {i.sha256.removeprefix("sha256:") for i in collect_garbage(ws.db, ws.cas, now=later).removed}
    assert {envelope, outputs} <= removed
    model = detail["files"][0]["sha256"].removeprefix("sha256:")
    assert model not in removed and ws.cas.exists(model)  # the run still references the model


@pytest.mark.parametrize("ref,message", [
    ("a/b@1.0.0", "Error [INVALID_INPUT]: release name is a/b: use 1-64 of a-z"),
    ("quickstart@1.0", "Error [INVALID_INPUT]: release version is 1.0, not a semantic version"),
    ("@1.0.0", "Error [INVALID_INPUT]: release name is '': use 1-64 of a-z"),
])
def test_bad_references(invoke, ev, ref, message):
    assert error_line(invoke("releases", "show", ref, expect=2)).startswith(message)


def test_read_commands_stay_light(invoke, ev):
    """`releases list` and `show` import no onnx, onnxruntime, qai_hub, jsonschema or nacl (numpy comes in
    with sqlite-utils, for every command that opens a home)."""
    import subprocess
    import sys

    publish(invoke, "--force")
    probe = ("import json, sys\nfrom edgegate_cli.cli import main\nsys.argv = ['edgegate', *sys.argv[1:]]\n"
             "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
             "heavy = ['onnx', 'onnxruntime', 'qai_hub', 'jsonschema', 'nacl', 'scipy', 'yaml']\n"
             "sys.stderr.write(json.dumps([code, [m for m in heavy if m in sys.modules]]))\n")
    for args in (["releases", "list", "--json"], ["releases", "show", "quickstart", "--json"]):
        proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120)
        assert json.loads(proc.stderr) == [0, []], (args, proc.stderr)
