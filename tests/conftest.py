"""Shared fixtures: every test gets a fresh home and a clean environment; `invoke` is strict."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ["aihub_double.fixtures", "bundle_evidence", "s3_store", "agent.fixtures"]

_SCRUBBED = ("QAIHUB_API_TOKEN", "EDGEGATE_SIGNING_KEY", "EDGEGATE_QAIHUB_API_URL", "HTTP_PROXY",
             "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def fresh_home(tmp_path, monkeypatch):
    """EDGEGATE_HOME in tmp, no colours, fixed width, no tokens or proxies from the caller."""
    home = tmp_path / "home"
    monkeypatch.setenv("EDGEGATE_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    for name in _SCRUBBED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "no-client.ini"))  # never the developer's own
    return home


@pytest.fixture
def invoke():
    """invoke(*args, expect=0) runs the CLI in-process and fails, with stderr, on another exit code."""
    from typer.testing import CliRunner

    from edgegate_cli.cli import app

    def _invoke(*args, expect: int | None = 0, input: str | None = None):
        runner = CliRunner()
        result = runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)
        if expect is not None and result.exit_code != int(expect):  # None: the caller checks the outcome
            raise AssertionError(
                f"edgegate {' '.join(map(str, args))} exited {result.exit_code}, expected {int(expect)}\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}")
        return result

    return _invoke


@pytest.fixture(scope="session")
def _probed_template(tmp_path_factory):
    """A home in which the local backend was probed once (probing costs a few seconds)."""
    from edgegate_cli.runs.probe import probe_backend
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    path = tmp_path_factory.mktemp("template") / "home"
    ws = open_workspace(Home(path, "--home"))
    probe_backend(ws, "local", lambda _msg: None)
    ws.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ws.db.close()
    return path


@pytest.fixture
def probed_home(_probed_template, fresh_home):
    """The per-test home, pre-probed for the local backend (a copy of the session template)."""
    import shutil

    shutil.copytree(_probed_template, fresh_home)
    return fresh_home


# For tests not about noise: the machine is shared, and a noisy neighbour must not turn the expected pass or fail
# into FLAKY_METRIC (CV) or NOISY_HOST (starved repeats: starved_off_cpu 1 means never).
LOOSE = ", flake: {latency_cv: 1.0, throughput_cv: 1.0}, noisy_host: {starved_off_cpu: 1}"


def write_pipeline(path: Path, *, gates: str, iterations: int = 30, repeats: int = 3, extra_policy: str = "",
                   model: str | None = None) -> Path:
    """A local pipeline on the quickstart model with the given YAML gate list."""
    model = model or str(REPO / "examples" / "quickstart" / "model.onnx")
    path.write_text(f"name: {path.stem}\nbackend: local\ndevices: ['local:cpu']\nmodel: {{path: '{model}'}}\n"
                    f"run_policy: {{repeats: {repeats}, iterations: {iterations}{extra_policy}}}\n"
                    f"gates: {gates}\n")
    return path


@pytest.fixture
def homeless_dir():
    """A fresh directory with no `.edgegate/` anywhere above it (a stray one in /tmp would otherwise be found
    by home resolution, as it walks up like git), removed afterwards."""
    import shutil
    import tempfile

    from edgegate_cli.store.home import find_dot_home

    for base in ("/var/tmp", "/dev/shm", tempfile.gettempdir(), str(Path.home())):
        if Path(base).is_dir() and find_dot_home(Path(base).resolve()) is None:
            path = Path(tempfile.mkdtemp(prefix="edgegate-test-", dir=base)).resolve()
            yield path
            shutil.rmtree(path, ignore_errors=True)
            return
    pytest.fail("every candidate temp directory has a .edgegate/ above it")
