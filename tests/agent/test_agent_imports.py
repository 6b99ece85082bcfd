"""The agent runs on modest devices: its import closure holds no AI Hub SDK, no model-graph library,
no SQLite state library, no JSON-schema validator — and, from EdgeGate, only what ARCHITECTURE.md
allows it (the base modules and the evidence read side). tests/test_architecture.py checks the
static import direction; this checks what a running agent really loads."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ["qai_hub", "onnx", "sqlite_utils", "jsonschema", "pydantic", "typer", "rich", "yaml"]
ALLOWED_EDGEGATE = {"edgegate_cli", "edgegate_cli.errors", "edgegate_cli.context", "edgegate_cli.canonical",
                    "edgegate_cli.evidence", "edgegate_cli.evidence.dsse", "edgegate_cli.evidence.signed_json",
                    "edgegate_cli.evidence.release_manifest", "edgegate_cli.evidence.rollback_directive"}

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


PULL_PROBE = """
import json, sys
import edgegate_cli.agent.app, edgegate_cli.agent.server, edgegate_cli.agent.pull, edgegate_cli.agent.pull_loop
from edgegate_cli.download import Fetcher, channel_location
from edgegate_cli.objectstore import ObjectStore
ObjectStore("s3://bucket-name", endpoint_url="http://127.0.0.1:9")  # what a poll of an s3:// channel loads
import tenacity, onnxruntime, numpy, nacl.signing, semver, prometheus_client, uvicorn
print(json.dumps(sorted(sys.modules)))
"""
PULL_EDGEGATE = ALLOWED_EDGEGATE | {"edgegate_cli.evidence.channel_manifest"}


def test_pull_mode_adds_only_the_download_client_and_the_object_store():
    """In pull mode from an s3:// channel the agent also loads the verified-download client and the S3 access
    under it (boto3, tenacity) and the channel manifest reader; still nothing forbidden, nothing of the release
    box. (An https:// channel also needs httpx, which imports rich for its own command line.)"""
    proc = subprocess.run([sys.executable, "-c", PULL_PROBE], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED": "true"})
    assert proc.returncode == 0, proc.stderr
    modules = json.loads(proc.stdout)
    assert {"edgegate_cli.agent.pull", "boto3", "tenacity"} <= set(modules) and "httpx" not in modules
    assert [m for m in modules if m.split(".")[0] in FORBIDDEN] == []
    ours = {m for m in modules if m.startswith("edgegate_cli") and not m.startswith("edgegate_cli.agent")
            and not m.startswith(("edgegate_cli.download", "edgegate_cli.objectstore"))}
    assert ours <= PULL_EDGEGATE, sorted(ours - PULL_EDGEGATE)
