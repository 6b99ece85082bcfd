"""The shape of the package: core modules are a library, `--help` stays cheap, every command has help
(STYLE conventions 2, 3 and 10)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "edgegate_cli"
UI_MODULES = {"cli.py"}  # plus everything under commands/ and ui/
HEAVY = ["onnx", "onnxruntime", "onnxruntime_genai", "qai_hub", "httpx", "nacl", "numpy", "scipy",
         "sqlite_utils", "jsonschema", "pydantic", "yaml"]


def _imported_roots(tree: ast.AST) -> set[str]:
    """Top-level names of every absolute import anywhere in the tree, function bodies included."""
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _core_modules() -> list[Path]:
    def is_ui(path: Path) -> bool:
        rel = path.relative_to(PACKAGE)
        return rel.parts[0] in ("commands", "ui") or rel.as_posix() in UI_MODULES

    return sorted(p for p in PACKAGE.rglob("*.py") if not is_ui(p))


def test_core_modules_never_import_typer_or_rich():
    """Only cli.py, commands/ and output.py may import typer or rich (or click, typer's base), at any
    level."""
    offenders = {}
    for path in _core_modules():
        found = _imported_roots(ast.parse(path.read_text(), str(path))) & {"typer", "rich", "click"}
        if found:
            offenders[str(path.relative_to(PACKAGE))] = sorted(found)
    assert offenders == {}
    assert len(_core_modules()) > 10  # the walk really saw the package


def test_the_import_check_catches_a_nested_import():
    """The check is not vacuous: an import inside a function body is found."""
    tree = ast.parse("def f():\n    from rich.table import Table\n    import typer.core as c\n")
    assert _imported_roots(tree) == {"rich", "typer"}


def _command_paths(command, prefix=()):
    yield prefix, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _command_paths(sub, (*prefix, name))


HELP_PROBE = """
import json, sys
from edgegate_cli.cli import main
paths, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
codes = []
for path in paths:
    sys.argv = ["edgegate", *path, "--help"]
    try:
        main()
    except SystemExit as exc:
        codes.append(exc.code)
sys.stderr.write(json.dumps({"codes": codes, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def _help_probe(paths: list[list[str]], heavy: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", HELP_PROBE, json.dumps(paths), json.dumps(heavy)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: edgegate" in proc.stdout
    return json.loads(proc.stderr)


def test_help_does_not_import_heavy_modules():
    """`edgegate --help` runs in a fresh interpreter without importing onnx, onnxruntime, qai_hub,
    httpx, nacl, numpy, sqlite_utils, jsonschema, pydantic or yaml."""
    assert _help_probe([[]], HEAVY) == {"codes": [0], "loaded": []}


def test_subcommand_help_does_not_import_heavy_modules():
    """`--help` of every sub-command stays light too. pydantic is the one exception, and not ours:
    typer (0.29) imports it to coerce the root's `--home` value, which is processed before a
    sub-command's --help exits."""
    import typer.main

    from edgegate_cli.cli import app

    paths = [list(p) for p, _ in _command_paths(typer.main.get_command(app)) if p]
    assert ["gc"] in paths and ["cas", "verify"] in paths
    heavy = [m for m in HEAVY if m != "pydantic"]
    assert _help_probe(paths, heavy) == {"codes": [0] * len(paths), "loaded": []}


def _all_commands():
    import typer.main

    from edgegate_cli.cli import app

    return [pytest.param(" ".join(p) or "edgegate", c, id=" ".join(p) or "edgegate")
            for p, c in _command_paths(typer.main.get_command(app))]


@pytest.mark.parametrize("name,command", _all_commands())
def test_every_command_has_help_text(name, command):
    """Each registered command and group says what it does in `--help`."""
    assert (command.help or "").strip(), f"`{name}` has no help text"
