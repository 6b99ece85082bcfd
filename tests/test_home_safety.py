"""Issue 10, items 2-4: a read-only home still answers read-only commands; a home that is a file, or a
mistyped --home, is refused; the home used is named when it may surprise; and two processes opening a blank
home at once never race on WAL mode. Also: every error under --json is a document on stdout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

EDGEGATE = [sys.executable, "-m", "edgegate_cli.cli"]


def _read_only(home: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    """Run edgegate with `home` mounted read-only (a private mount namespace as root; plain permissions
    otherwise, which a non-root user cannot bypass)."""
    if os.geteuid() == 0:
        if not shutil.which("unshare"):
            pytest.fail("unshare(1) is needed to make a read-only mount as root")
        inner = 'mount --bind -o ro "$0" "$0" && exec "$@"'
        cmd = ["unshare", "-m", "sh", "-c", inner, str(home), *EDGEGATE, *args]
    else:
        for p in [home, *home.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
        cmd = [*EDGEGATE, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


@pytest.fixture
def used_home(probed_home, tmp_path, invoke):
    """A home with a run and a key, closed cleanly (no -wal/-shm left), as a read-only mount would find it."""
    import gc

    from conftest import write_pipeline

    invoke("keys", "generate")
    invoke("run", write_pipeline(tmp_path / "ro.yaml", gates="[{metric: latency_ms, op: '<=', value: 1000}]",
                                 extra_policy=", flake: {latency_cv: 1.0, throughput_cv: 1.0}"))
    gc.collect()  # the in-process commands' connections: the last one to close removes -wal and -shm
    for suffix in ("-wal", "-shm"):
        assert not (probed_home / f"state.db{suffix}").exists()
    return probed_home


def test_read_only_home_serves_read_commands_and_refuses_writers(used_home):
    env = {**os.environ, "EDGEGATE_HOME": str(used_home)}
    status = _read_only(used_home, "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["runs"] == 1
    listed = _read_only(used_home, "runs", "list", env=env)
    assert listed.returncode == 0 and "\tpassed\t" in listed.stdout, listed.stderr
    keys = _read_only(used_home, "keys", "list", "--json", env=env)
    assert keys.returncode == 0 and json.loads(keys.stdout)["active"], keys.stderr
    refused = _read_only(used_home, "keys", "generate", env=env)
    assert refused.returncode == 2
    assert refused.stderr == (f"Error [HOME_UNUSABLE]: {used_home}: the home is read-only, and this command "
                              "changes it (use a writable --home; read-only commands (status, runs list/show, keys "
                              "list, verify, ...) still work here)\n")


def test_a_home_that_is_a_file_is_refused(tmp_path, invoke):
    (tmp_path / "file").write_text("not a home")
    result = invoke("--home", tmp_path / "file", "status", expect=2)
    assert result.stderr == (f"Error [HOME_UNUSABLE]: {tmp_path / 'file'}: is a file, not a home directory (from "
                             "--home) (point --home (or EDGEGATE_HOME) at a directory)\n")


def test_a_mistyped_home_is_refused_and_init_creates_one(tmp_path, invoke):
    typo = tmp_path / "hoem"
    result = invoke("--home", typo, "runs", "list", expect=2)
    assert result.stderr == (f"Error [HOME_UNUSABLE]: --home {typo}: no such directory (check the path, or create "
                             f"a home there with `edgegate --home {typo} init`)\n")
    assert not typo.exists()
    invoke("--home", typo, "init")
    assert (typo / "state.db").is_file()
    assert invoke("--home", typo, "runs", "list").stdout == "run\tpipeline\tbackend\tstatus\terror\tmodel\tcreated\n"


def test_the_home_is_named_when_it_is_not_the_one_beside_the_pipeline(probed_home, homeless_dir, invoke,
                                                                       monkeypatch):
    """A project has .edgegate/ beside its pipeline; run from a directory with another home: one stderr line.
    From a directory with no home above, the per-user data directory is named. A home the user named
    (--home, EDGEGATE_HOME) is not."""
    import shutil

    from conftest import write_pipeline

    project, elsewhere = homeless_dir / "project", homeless_dir / "elsewhere"
    (project / ".edgegate").mkdir(parents=True)
    shutil.copytree(probed_home, elsewhere / ".edgegate")
    pipeline = write_pipeline(project / "p.yaml", gates="[{metric: latency_ms, op: '<=', value: 1000}]",
                              extra_policy=", flake: {latency_cv: 1.0, throughput_cv: 1.0}")
    assert "home:" not in invoke("run", pipeline).stderr  # EDGEGATE_HOME: named by the user
    monkeypatch.delenv("EDGEGATE_HOME")
    monkeypatch.chdir(elsewhere)
    result = invoke("run", pipeline)
    assert result.stderr.startswith(f"home: {elsewhere / '.edgegate'} (from .edgegate/ above the current directory), "
                                    f"not {project / '.edgegate'} beside the pipeline\n")
    monkeypatch.setenv("XDG_DATA_HOME", str(homeless_dir / "xdg"))
    monkeypatch.chdir(homeless_dir)
    result = invoke("runs", "list")
    assert result.stderr == (f"home: {homeless_dir / 'xdg' / 'edgegate'} (the per-user data directory: no "
                             f".edgegate/ above {homeless_dir}; `edgegate init` makes one)\n")
    assert invoke("-q", "runs", "list").stderr == ""
    monkeypatch.chdir(project)
    assert invoke("runs", "list").stderr == ""  # the project's own home: nothing to say


WRITER = """
import sys, time
from pathlib import Path
from edgegate_cli.store.state import open_state
home, go = Path(sys.argv[1]), Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
open_state(home / "state.db").close()
"""


def test_processes_opening_a_blank_home_at_once_never_race_on_wal(tmp_path):
    """Item 4: 6 processes x 5 blank homes, released together; every open succeeds and the db is in WAL mode."""
    for round_ in range(5):
        home, go = tmp_path / f"h{round_}", tmp_path / f"go{round_}"
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(go)], stderr=subprocess.PIPE,
                                  text=True) for _ in range(6)]
        go.touch()
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, errors
        from edgegate_cli.store.state import open_state

        assert open_state(home / "state.db").journal_mode == "wal"


def test_json_errors_for_usage_and_internal_errors(invoke):
    """--json: a usage error is {"error": ...} on stdout with exit 2, like every other error."""
    result = invoke("runs", "list", "--json", "--bogus", expect=2)
    doc = json.loads(result.stdout)
    assert doc == {"error": {"code": "USAGE_ERROR", "message": "No such option: --bogus", "hint": "see --help",
                             "exit_code": 2}}
    assert result.stderr == "Error [USAGE_ERROR]: No such option: --bogus (see --help)\n"
    missing = json.loads(invoke("verify", "--json", expect=2).stdout)
    assert missing["error"]["code"] == "USAGE_ERROR" and "Missing argument 'FILE'" in missing["error"]["message"]


BUGGY = """
import sys
from edgegate_cli.cli import app, main

@app.command("explode")
def explode(json_: bool = __import__("typer").Option(False, "--json")):
    from edgegate_cli.commands import start
    raise ZeroDivisionError("division by zero")

sys.argv = ["edgegate", "explode", "--json"]
main()
"""


def test_json_internal_error_is_a_document_on_stdout():
    proc = subprocess.run([sys.executable, "-c", BUGGY], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4
    assert json.loads(proc.stdout) == {"error": {
        "code": "INTERNAL", "message": "ZeroDivisionError: division by zero",
        "hint": "a bug in EdgeGate; rerun with --debug for the traceback", "exit_code": 4}}
