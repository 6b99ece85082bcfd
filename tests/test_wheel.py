"""Issue 10, item 1: the README's `pip install .` / `uv tool install .` path. The built wheel, installed into a
fresh virtual environment (the locked dependencies, from uv's cache: no network), runs the quickstart from a
directory outside the repository on a new home, probes the local backend, and names its schemas by a command
that works where it is installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        pytest.fail("uv is needed to build the wheel (the README's development setup installs it)")
    return uv


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from this checkout, installed with its locked dependencies into a fresh venv."""
    uv, root = _uv(), tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}

    def run(*args, **kwargs):
        proc = subprocess.run([uv, *args], capture_output=True, text=True, timeout=300, env=env, **kwargs)
        assert proc.returncode == 0, proc.stderr
        return proc

    run("build", "--wheel", "--offline", "-q", "-o", str(root / "dist"), str(REPO))
    (wheel,) = (root / "dist").glob("edgegate-*.whl")
    venv = root / "venv"
    # a fresh environment holding exactly the locked runtime dependencies (no dev ones, not the project)...
    proc = subprocess.run([uv, "sync", "--frozen", "--offline", "--no-dev", "--no-install-project", "-q",
                           "--project", str(REPO), "--python", sys.executable],
                          capture_output=True, text=True, timeout=300, env={**env, "UV_PROJECT_ENVIRONMENT": str(venv)})
    assert proc.returncode == 0, proc.stderr
    # ...and the wheel itself, as `pip install .` would put it there
    run("pip", "install", "--offline", "--no-deps", "-q", "--python", str(venv / "bin" / "python"), str(wheel))
    return venv


def _edgegate(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEGATE_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(HOME=str(cwd / "user"), XDG_DATA_HOME=str(cwd / "user" / ".local" / "share"))
    return subprocess.run([str(venv / "bin" / "edgegate"), *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env=env)


def test_the_installed_wheel_gates_the_quickstart_outside_the_repo(installed, homeless_dir):
    project = homeless_dir / "project"
    shutil.copytree(REPO / "examples" / "quickstart", project)
    result = _edgegate(installed, project, "run", "pipeline.yaml", "--json")
    outcome = json.loads(result.stdout)
    # passed, or (on a host loaded by other work) refused as starved: either way the installed program measured
    # the model on a new home; what this test guards against is the INVALID_INPUT of a wheel without its data
    # (a spread, however wide, cannot make 0.3 ms against 250 ms FLAKY_METRIC: every repeat is below it)
    assert (result.returncode, outcome["verdict"], outcome["error_code"]) in (
        (0, "passed", None), (3, "error", "NOISY_HOST")), result.stderr
    assert outcome["devices"]["local:cpu"]["latency_ms"]["samples"] == 600
    assert "probing the local backend first" in result.stderr
    home = project / "user" / ".local" / "share" / "edgegate"
    assert f"home: {home} (the per-user data directory" in result.stderr
    assert (home / "state.db").is_file()
    import edgegate_cli

    assert not str(Path(edgegate_cli.__file__)).startswith(str(installed))  # the test imports the checkout...
    probe = _edgegate(installed, project, "probe", "--backend", "local", "--json")
    assert probe.returncode == 0, probe.stderr  # ...the installed command runs from site-packages
    assert json.loads(probe.stdout)["capabilities"]["model_forms"]["onnx_external"] == "ok"


def test_the_installed_wheel_names_schemas_it_can_show(installed, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbackend: local\ndevices: [local:cpu]\ngates: [{metric: latency, op: '<', value: 1}]\n")
    result = _edgegate(installed, tmp_path, "run", str(bad))
    assert result.returncode == 2
    assert result.stderr.endswith("(the schema: `edgegate schema show pipeline`)\n")
    shown = _edgegate(installed, tmp_path, "schema", "show", "pipeline")
    assert shown.returncode == 0 and json.loads(shown.stdout)["title"] == "EdgeGate pipeline"
    listed = _edgegate(installed, tmp_path, "schema", "list", "--json")
    path = Path(json.loads(listed.stdout)["schemas"]["pipeline"])
    assert path.is_file() and str(path).startswith(str(installed))
