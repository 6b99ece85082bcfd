"""The shape of the package (ARCHITECTURE.md): packages import only downward, nothing imports in a circle,
core modules are a library, `--help` stays cheap, every command has help (STYLE conventions 2, 3, 10)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "edgegate_cli"
HEAVY = ["onnx", "onnxruntime", "onnxruntime_genai", "qai_hub", "httpx", "nacl", "numpy", "scipy",
         "sqlite_utils", "jsonschema", "pydantic", "yaml", "boto3", "botocore", "tenacity", "uvicorn", "starlette",
         "cryptography", "prometheus_client"]

# Which way imports go. A unit is a package (`store`, `gating`, …) or a base module (`errors`, …);
# a unit may import itself, the root package (`edgegate_cli/__init__.py`: version, data folders) and
# exactly what its row lists. Nothing else, at module level or inside functions.
BASE = {"context", "errors", "canonical", "config", "files"}
CORE = {"store", "spec", "measure", "backends", "gating", "runs", "evidence", "registry", "fleet", "rollout",
        "agent", "download", "objectstore"}
ALLOWED: dict[str, set[str]] = {
    "cli": {"commands", "ui"} | CORE | BASE,
    "commands": {"ui"} | CORE | BASE,
    "ui": BASE,
    "runs": {"gating", "backends", "measure", "spec", "evidence", "registry", "fleet", "store"} | BASE,
    "rollout": {"gating", "backends", "measure", "spec", "evidence", "registry", "fleet", "store", "objectstore",
                "download"} | BASE,
    # A release is built on a verdict re-derived by gating (registry/proof.py); gating never imports
    # registry, and runs/rollout sit above both, so the edge adds no cycle.
    "registry": {"gating", "evidence", "spec", "store", "download", "objectstore"} | BASE,
    "fleet": {"evidence", "spec", "store"} | BASE,
    "gating": {"measure", "evidence", "spec", "store"} | BASE,
    "backends": {"measure", "spec", "store"} | BASE,
    "evidence": {"store"} | BASE,
    "measure": {"spec"} | BASE,
    "spec": {"store"} | BASE,
    "store": BASE,
    # The agent runs on devices: besides the base modules it may use only the read side of evidence.
    "agent": {"evidence.dsse", "evidence.zip_safety", "evidence.release_manifest", "evidence.rollback_directive",
              "evidence.signed_json", "evidence.channel_manifest", "download", "objectstore", "context", "errors",
              "canonical"},
    # The verified-download client (a public SDK, usable on devices) and the S3 access under it.
    "download": {"evidence.dsse", "evidence.release_manifest", "evidence.signed_json", "evidence.channel_manifest",
                 "objectstore", "context", "errors", "canonical"},
    "objectstore": {"context", "errors", "canonical"},
    "config": {"context", "errors"},
    "canonical": {"errors"},
    "files": {"errors"},
    "context": set(),
    "errors": set(),
}
UI_UNITS = {"cli", "commands", "ui"}  # the only units that may import typer, rich or click


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> list[tuple[str, int]]:
    """(absolute module, line) of every import in the file, function bodies included; `from X import y`
    counts as importing `X.y` when that is a module of the package, else `X`."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.append((candidate if _is_module(candidate, root) else target, node.lineno))
    return found


def _is_module(dotted: str, root: Path) -> bool:
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return dotted.split(".")[0] == root.name and ((root / rel).with_suffix(".py").is_file()
                                                   or (root / rel / "__init__.py").is_file())


def unit_of(module: str, root_name: str) -> str:
    parts = module.split(".")[1:]
    return parts[0] if parts else "__init__"


def import_graph(root: Path) -> dict[str, list[tuple[str, int]]]:
    """Every module of the package and the package modules it imports (with line numbers)."""
    graph = {}
    for path in sorted(root.rglob("*.py")):
        own = [(m, line) for m, line in imports_of(path, root) if m.split(".")[0] == root.name]
        graph[module_name(path, root)] = own
    return graph


def layer_violations(root: Path) -> list[str]:
    out = []
    for module, targets in import_graph(root).items():
        src = unit_of(module, root.name)
        if src == "__init__":
            continue
        allowed = ALLOWED.get(src)
        if allowed is None:
            out.append(f"{module}: unit {src!r} is not in the table")
            continue
        for target, line in targets:
            dst = unit_of(target, root.name)
            sub = ".".join(target.split(".")[1:3])
            if dst in (src, "__init__") or dst in allowed or sub in allowed:
                continue
            out.append(f"{module}:{line} imports {target} ({src} may not import {dst})")
    return out


def cycles(root: Path) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself)."""
    graph = {m: sorted({t for t, _ in ts}) for m, ts in import_graph(root).items()}
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, []):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def test_packages_import_only_what_the_table_allows():
    """Every import, at any level, goes down the table of ARCHITECTURE.md."""
    assert layer_violations(PACKAGE) == []
    assert len(import_graph(PACKAGE)) > 40  # the walk really saw the package


def test_no_import_cycles():
    """No two modules import each other, directly or through others, even from inside functions."""
    assert cycles(PACKAGE) == []


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "edgegate_cli"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_layer_check_catches_a_planted_upward_import(tmp_path):
    """Not vacuous: a store module importing gating inside a function is reported with its line."""
    root = _plant(tmp_path, {"store/__init__.py": "", "gating/__init__.py": "", "gating/evaluate.py": "X = 1\n",
                             "store/cas.py": "def f():\n    from ..gating.evaluate import X\n    return X\n"})
    assert layer_violations(root) == [
        "edgegate_cli.store.cas:2 imports edgegate_cli.gating.evaluate (store may not import gating)"]


def test_the_cycle_check_catches_a_planted_cycle(tmp_path):
    """Not vacuous: two modules of one package importing each other (one lazily) form a cycle."""
    root = _plant(tmp_path, {"spec/__init__.py": "", "spec/a.py": "from . import b\n",
                             "spec/b.py": "def f():\n    from .a import g\n"})
    assert layer_violations(root) == []
    assert cycles(root) == [["edgegate_cli.spec.a", "edgegate_cli.spec.b"]]


def test_the_agent_may_not_import_the_evidence_write_side(tmp_path):
    """The agent's row names single evidence modules: the bundle writer is outside it."""
    root = _plant(tmp_path, {"agent/__init__.py": "", "evidence/__init__.py": "", "evidence/dsse.py": "",
                             "evidence/bundle_write.py": "",
                             "agent/app.py": "from ..evidence import dsse\nfrom ..evidence.bundle_write import x\n"})
    assert layer_violations(root) == [
        "edgegate_cli.agent.app:2 imports edgegate_cli.evidence.bundle_write (agent may not import evidence)"]


def _imported_roots(tree: ast.AST) -> set[str]:
    """Top-level names of every absolute import anywhere in the tree, function bodies included."""
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_modules_never_import_typer_or_rich():
    """Only cli.py, commands/ and ui/ may import typer or rich (or click, typer's base), at any level."""
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if unit_of(module_name(path, PACKAGE), PACKAGE.name) in UI_UNITS:
            continue
        found = _imported_roots(ast.parse(path.read_text(), str(path))) & {"typer", "rich", "click"}
        if found:
            offenders[str(path.relative_to(PACKAGE))] = sorted(found)
    assert offenders == {}


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
    """`--help` of every sub-command stays light too, pydantic included: typer (0.29) would import it to
    coerce the root's `--home` value, processed before a sub-command's --help exits, but plain values skip
    it (commands/params.py)."""
    import typer.main

    from edgegate_cli.cli import app

    paths = [list(p) for p, _ in _command_paths(typer.main.get_command(app)) if p]
    assert ["gc"] in paths and ["cas", "verify"] in paths
    assert _help_probe(paths, HEAVY) == {"codes": [0] * len(paths), "loaded": []}


READ_PROBE = """
import json, sys
from edgegate_cli.cli import main
args, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["edgegate", *args]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
sys.stderr.write("\\n" + json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}))
"""
# What reading the home must never cost: the local backend's stack, AI Hub's SDK, input-file parsing.
READ_HEAVY = ["numpy", "onnx", "onnxruntime", "onnxruntime_genai", "qai_hub", "jsonschema", "scipy", "yaml",
              "httpx", "pydantic"]


def test_read_commands_import_only_what_they_use(ev):
    """Each read command, on a home with real runs and blobs, in a fresh interpreter, succeeds without
    importing numpy, onnx, onnxruntime, qai_hub, jsonschema, yaml or httpx; only `gate explain`, which
    re-validates the run's evidence into typed results, imports pydantic (typer's own use of it for option
    values is bypassed: commands/params.py)."""
    reads = {("runs", "list"): "quickstart", ("runs", "list", "--json", "--limit", "5"): ev.failed,
             ("runs", "show", ev.passed): "latency_ms", ("runs", "show", ev.failed, "--json"): '"events"',
             ("status",): "blobs", ("status", "--json"): '"cas_blobs"', ("cas", "ls"): "raw_payload",
             ("cas", "ls", "--json"): '"present": true', ("gc", "--dry-run"): "Would free",
             ("gc", "--dry-run", "--json"): '"dry_run": true', ("gate", "explain", ev.passed): "Verdict: passed"}
    loaded = {}
    for args, shown in reads.items():
        proc = subprocess.run([sys.executable, "-c", READ_PROBE, json.dumps(args), json.dumps(READ_HEAVY)],
                              capture_output=True, text=True, timeout=120)
        report = json.loads(proc.stderr.rsplit("\n", 1)[-1])
        assert (proc.returncode, report["code"]) == (0, 0), (args, proc.stderr)
        assert shown in proc.stdout, args  # it really read the home
        loaded[" ".join(args[:2])] = report["loaded"]
    assert loaded == {name: ["pydantic"] if name == "gate explain" else [] for name in loaded}


def _all_commands():
    import typer.main

    from edgegate_cli.cli import app

    return [pytest.param(" ".join(p) or "edgegate", c, id=" ".join(p) or "edgegate")
            for p, c in _command_paths(typer.main.get_command(app))]


@pytest.mark.parametrize("name,command", _all_commands())
def test_every_command_has_help_text(name, command):
    """Each registered command and group says what it does in `--help`."""
    assert (command.help or "").strip(), f"`{name}` has no help text"
