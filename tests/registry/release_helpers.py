"""Shared by the registry tests: the quickstart models, publishing from the `ev` evidence home, and
reading what a command printed."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import REPO

MODEL = REPO / "examples" / "quickstart" / "model.onnx"
HEAVY = REPO / "examples" / "quickstart" / "model_heavy.onnx"


def error_line(result) -> str:
    """The error line a refusal ends with; nothing else but progress lines before it, no traceback."""
    lines = result.stderr.splitlines()
    assert lines and "Traceback" not in result.stderr, result.stderr
    assert all(not ln.startswith("Error") for ln in lines[:-1]), result.stderr
    return lines[-1]


def publish(invoke, *args, model: Path = MODEL, version: str = "1.0.0", expect: int = 0, name: str = "quickstart"):
    return invoke("publish", model, "--name", name, "--version", version, *args, expect=expect)


def publish_json(invoke, *args, **kwargs) -> dict:
    return json.loads(publish(invoke, *args, "--json", **kwargs).stdout)


def open_home(home: Path):
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    return open_workspace(Home(home, "--home"), reap=False)


def envelope_payload(path: Path) -> dict:
    import base64

    return json.loads(base64.b64decode(json.loads(path.read_text())["payload"]))
