"""The agent runs on modest devices: its import closure holds no AI Hub SDK, no model-graph library,
no SQLite state library, no JSON-schema validator — and, from EdgeGate, only what ARCHITECTURE.md
allows it (errors and the evidence read side)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "edgegate_cli" / "agent"
FORBIDDEN = ["qai_hub", "onnx", "sqlite_utils", "jsonschema", "pydantic", "typer", "rich", "yaml"]
ALLOWED_EDGEGATE = {"edgegate_cli", "edgegate_cli.errors", "edgegate_cli.dsse", "edgegate_cli.signed_json",
                    "edgegate_cli.release_manifest", "edgegate_cli.rollback_directive"}

PROBE = """
import json, sys
import edgegate_cli.agent.app, edgegate_cli.agent.server, edgegate_cli.agent.deploy, edgegate_cli.agent.rollback
from edgegate_cli.agent.models import load_model  # noqa: F401
import onnxruntime, numpy, nacl.signing, semver, prometheus_client, uvicorn  # what serving really pulls in
print(json.dumps(sorted(sys.modules)))
"""


def closure() -> list[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_agent_import_closure_is_small():
    """A fresh interpreter that imports the agent (and what serving loads) has none of the forbidden
    modules: exactly `onnx` is forbidden, onnxruntime is what the agent runs models with."""
    modules = closure()
    assert "edgegate_cli.agent.app" in modules and "onnxruntime" in modules  # the probe really ran
    assert [m for m in modules if m.split(".")[0] in FORBIDDEN] == []
    ours = {m for m in modules if m.startswith("edgegate_cli") and not m.startswith("edgegate_cli.agent")}
    assert ours <= ALLOWED_EDGEGATE, sorted(ours - ALLOWED_EDGEGATE)


def test_agent_sources_import_only_allowed_edgegate_modules():
    """Statically too, imports inside functions included: agent/ imports only agent/ and the allowed modules."""
    offenders = []
    for path in sorted(AGENT.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                target = "edgegate_cli." + (node.module or "") if node.level == 2 else "agent"
                if node.level == 2 and target not in ALLOWED_EDGEGATE | {"edgegate_cli."}:
                    offenders.append(f"{path.name}: {target}")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN + ["edgegate_cli"]]
    assert len(list(AGENT.glob("*.py"))) >= 10
    assert offenders == []
