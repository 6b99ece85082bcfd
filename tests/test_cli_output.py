"""Issue 10, items 5-9: closed pipes never change a stored verdict, --debug never changes an exit code, `run`
checks where it will write before measuring and prints its outcome whatever fails after, tables are plain off
a terminal, -q/--quiet, and the small things a new user trips on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import LOOSE, REPO, write_pipeline
from model_factory import fails_at_run_time

EDGEGATE = f"{sys.executable} -m edgegate_cli.cli"
GATES = "[{metric: latency_ms, op: '<=', value: 1000}]"


def stored_runs(invoke) -> list[dict]:
    return json.loads(invoke("runs", "list", "--json").stdout)["runs"]


def test_a_reader_closing_the_pipe_never_changes_the_stored_verdict(probed_home, tmp_path, invoke):
    """`run … 2>&1 | head -3`: head leaves while the run still logs; the run is stored passed, exit 141."""
    pipeline = write_pipeline(tmp_path / "piped.yaml", gates=GATES, extra_policy=LOOSE)
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {EDGEGATE} run {pipeline} 2>&1 | head -3"],
                          capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "EDGEGATE_HOME": str(probed_home)})
    assert proc.returncode == 141, proc.stderr
    assert len(proc.stdout.splitlines()) == 3
    (run,) = stored_runs(invoke)
    assert (run["status"], run["error_code"]) == ("passed", None)


def test_debug_keeps_exit_2_for_invalid_input(tmp_path, invoke):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbackend: local\ndevices: [local:cpu]\ngates: [{metric: latency_ms, op: '~', value: 1}]\n")
    plain = invoke("run", bad, expect=2)
    debug = invoke("--debug", "run", bad, expect=2)
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert debug.stderr.endswith(plain.stderr)


def test_debug_keeps_exit_3_for_a_device_job_failure(probed_home, tmp_path, invoke):
    model = fails_at_run_time(tmp_path / "bad.onnx")
    pipeline = write_pipeline(tmp_path / "f.yaml", gates=GATES, model=str(model))
    result = invoke("--debug", "run", pipeline, expect=3)
    assert "Traceback (most recent call last):" in result.stderr
    assert "Error [DEVICE_JOB_FAILED]: local:cpu: repeat 0 failed: " in result.stderr
    assert stored_runs(invoke)[0]["error_code"] == "DEVICE_JOB_FAILED"


def test_debug_keeps_exit_3_for_a_refused_token(tmp_path, invoke, monkeypatch):
    from aihub_double import AIHubDouble

    with AIHubDouble(token="the-right-token-000000", polls_before_done=1, seed=3) as hub:
        monkeypatch.setenv("EDGEGATE_QAIHUB_API_URL", hub.url)
        monkeypatch.setenv("QAIHUB_API_TOKEN", "a-wrong-token-11111111")
        pipeline = tmp_path / "q.yaml"
        pipeline.write_text(f"name: q\nbackend: qaihub\ndevices: ['Samsung Galaxy S24']\nmodel: {{path: "
                            f"'{REPO / 'examples' / 'quickstart' / 'model.onnx'}'}}\ngates: {GATES}\n")
        result = invoke("--debug", "run", pipeline, expect=3)
    assert "Traceback (most recent call last):" in result.stderr
    assert "Error [AUTH_REFUSED]: " in result.stderr and "a-wrong-token" not in result.stderr


def test_bundle_path_is_checked_before_measuring(probed_home, tmp_path, invoke):
    """`--bundle /nonexistent/dir/out.zip` used to measure the whole run, then print only BUNDLE_FAILED."""
    pipeline = write_pipeline(tmp_path / "b.yaml", gates=GATES, extra_policy=LOOSE)
    result = invoke("run", pipeline, "--bundle", "/nonexistent/dir/out.zip", expect=2)
    assert result.stderr == ("Error [INVALID_INPUT]: --bundle /nonexistent/dir/out.zip: directory /nonexistent/dir "
                             "does not exist (create the directory first, or give another path)\n")
    assert stored_runs(invoke) == []
    assert invoke("run", pipeline, "--junit", tmp_path, expect=2).stderr == (
        f"Error [INVALID_INPUT]: --junit {tmp_path}: is a directory; give a file path\n")


def test_a_bundle_failing_after_the_run_still_prints_the_verdict(probed_home, tmp_path, invoke):
    """The output directory exists but cannot be written (a read-only mount; plain permissions when not root):
    the run finishes, its tables and verdict are printed, then BUNDLE_FAILED (exit 3); with --json the outcome
    is the one document, carrying bundle.error."""
    import shutil

    pipeline = write_pipeline(tmp_path / "b.yaml", gates=GATES, extra_policy=LOOSE)
    invoke("keys", "generate")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cli = [sys.executable, "-m", "edgegate_cli.cli"]
    if os.geteuid() == 0:
        assert shutil.which("unshare"), "unshare(1) is needed to make a read-only mount as root"
        prefix = ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(out_dir)]
    else:
        out_dir.chmod(0o500)
        prefix = []
    env = {**os.environ, "EDGEGATE_HOME": str(probed_home)}
    human = subprocess.run([*prefix, *cli, "run", str(pipeline), "--bundle", str(out_dir / "b.zip")],
                           capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    as_json = subprocess.run([*prefix, *cli, "run", str(pipeline), "--bundle", str(out_dir / "b.zip"), "--json"],
                             capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert (human.returncode, as_json.returncode) == (3, 3), human.stderr
    assert "Gates" in human.stdout and human.stdout.splitlines()[-1].startswith("PASSED: run ")
    assert human.stderr.splitlines()[-1].startswith("Error [BUNDLE_FAILED]: run ")
    doc = json.loads(as_json.stdout)
    assert doc["verdict"] == "passed" and doc["bundle"]["error"]["code"] == "BUNDLE_FAILED"
    assert [r["status"] for r in stored_runs(invoke)] == ["passed", "passed"]


def test_tables_off_a_terminal_are_plain_rows_that_never_wrap(probed_home, tmp_path, invoke, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    pipeline = write_pipeline(tmp_path / "a-rather-long-pipeline-name-for-wrapping.yaml", gates=GATES,
                              extra_policy=LOOSE)
    run_id = json.loads(invoke("run", pipeline, "--json").stdout)["run_id"]
    lines = invoke("runs", "list").stdout.splitlines()
    assert lines[0] == "run\tpipeline\tbackend\tstatus\terror\tmodel\tcreated"
    fields = lines[1].split("\t")
    assert fields[:4] == [run_id, "a-rather-long-pipeline-name-for-wrapping", "local", "passed"]
    assert len(lines) == 2


def test_quiet_prints_no_progress(probed_home, tmp_path, invoke):
    pipeline = write_pipeline(tmp_path / "q.yaml", gates=GATES, extra_policy=LOOSE)
    result = invoke("-q", "run", pipeline)
    assert result.stderr == ""
    assert result.stdout.splitlines()[-1].startswith("PASSED: run ")
    assert invoke("--quiet", "run", tmp_path / "missing.yaml", expect=2).stderr == (
        f"Error [INVALID_INPUT]: {tmp_path / 'missing.yaml'}: no such file\n")


def test_wait_says_what_it_waits_for(probed_home, tmp_path, invoke):
    """A run started with --wait behind an active run names it once on stderr, then runs."""
    from edgegate_cli.store.runs import create_run, transition
    from edgegate_cli.store.workspace import open_workspace_at

    ws = open_workspace_at(probed_home)
    holder = create_run(ws.db, pipeline="other", pipeline_path="o.yaml", pipeline_sha256="0" * 64,
                        backend="local", devices=["local:cpu"], policy={}, gates=[])
    pipeline = write_pipeline(tmp_path / "w.yaml", gates=GATES, extra_policy=LOOSE)
    proc = subprocess.Popen([sys.executable, "-m", "edgegate_cli.cli", "run", str(pipeline), "--wait"], cwd=REPO,
                            env={**os.environ, "EDGEGATE_HOME": str(probed_home)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline() + proc.stderr.readline()
    assert f"waiting for run {holder} (other, queued, pid {os.getpid()} on " in line, line
    assert line.rstrip().endswith(") to finish: one run at a time per home")
    transition(ws.db, holder, "error", "TEST", {"error_code": "TEST"})
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def test_an_ambiguous_run_prefix_lists_the_matches(probed_home, tmp_path, invoke):
    pipeline = write_pipeline(tmp_path / "a.yaml", gates=GATES, extra_policy=LOOSE)
    first = json.loads(invoke("run", pipeline, "--json").stdout)["run_id"]
    second = json.loads(invoke("run", pipeline, "--json").stdout)["run_id"]
    result = invoke("runs", "show", "run-", expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: run id prefix 'run-' is ambiguous: it matches {second}, {first} "
                             "(give more of the run id (see `edgegate runs list`))\n")
    assert invoke("runs", "show", "%", expect=2).stderr.startswith("Error [NOT_FOUND]: no run '%'")


def test_keys_export_without_an_id_exports_the_active_key(invoke):
    key = json.loads(invoke("keys", "generate", "--json").stdout)
    assert invoke("keys", "export").stdout == invoke("keys", "export", key["key_id"]).stdout
    assert json.loads(invoke("keys", "export", "--json").stdout)["key_id"] == key["key_id"]


def test_baseline_set_of_a_run_that_did_not_pass_needs_force(probed_home, tmp_path, invoke):
    pipeline = write_pipeline(tmp_path / "fb.yaml", gates="[{metric: latency_ms, op: '<=', value: 0.000001}]",
                              extra_policy=LOOSE)
    run_id = json.loads(invoke("run", pipeline, "--json", expect=1).stdout)["run_id"]
    result = invoke("gate", "baseline", "set", "fb", run_id, expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: run {run_id} did not pass (it is failed); a baseline is "
                             "normally a passed run (pass --force to pin it anyway)\n")
    assert json.loads(invoke("gate", "baseline", "set", "fb", run_id, "--force", "--json").stdout)["pins"]


def test_interrupted_is_documented():
    readme = (REPO / "README.md").read_text()
    assert "`INTERRUPTED`" in readme and "| 130 |" in readme


@pytest.mark.parametrize("args", [("schema", "show", "pipeline"), ("schema", "list")])
def test_schema_command_prints_the_installed_schemas(invoke, args):
    result = invoke(*args)
    if args[1] == "show":
        assert json.loads(result.stdout)["title"] == "EdgeGate pipeline"
    else:
        assert "pipeline\t" in result.stdout
