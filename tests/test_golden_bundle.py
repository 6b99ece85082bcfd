"""A bundle made before the package layout change still verifies and re-derives identically (issue 9)."""

from __future__ import annotations

import json

from conftest import REPO

GOLDEN = REPO / "tests" / "data" / "golden"


def test_golden_bundle_verifies(invoke):
    """`verify` accepts the old bundle with its signer's key, checking every listed file."""
    result = invoke("verify", GOLDEN / "golden-relative.zip", "--key", GOLDEN / "golden.pem", "--json")
    doc = json.loads(result.stdout)
    assert doc["valid"] is True
    assert doc["verdict"] == "passed"


def test_golden_bundle_gate_check_is_unchanged(invoke):
    """`gate check` re-derives the same verdict, per-gate results and metrics as before the change."""
    result = invoke("gate", "check", GOLDEN / "golden-relative.zip", "--key", GOLDEN / "golden.pem", "--json")
    now, then = json.loads(result.stdout), json.loads((GOLDEN / "gate_check.json").read_text())
    assert now["agrees"] is True and now["verdict"] == then["verdict"] == "passed"
    assert now["evaluation"] == then["evaluation"]
    assert now["devices"] == then["devices"]
    assert {g["code"] for g in now["evaluation"]["gates"]} == {None}  # the relative gate really compared
    assert any(g["baseline"] == "last-passed" and g["p_value"] is not None for g in now["evaluation"]["gates"])
