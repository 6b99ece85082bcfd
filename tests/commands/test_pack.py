"""`edgegate pack` through the CLI on a real home: add/list/show/validate/diff/export, and each bad
input's exact stderr line and exit code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from edgegate_cli.errors import ExitCode

REPO = Path(__file__).resolve().parent.parent.parent
GENAI_PACK = REPO / "examples" / "genai" / "pack.json"


def pack_doc(version: str = "1.0.0", **changes) -> dict:
    doc = {"promptpack_id": "smoke", "version": version, "defaults": {"max_new_tokens": 16, "temperature": 0},
           "cases": [{"case_id": "paris", "prompt": "Q: What is the capital of France? A:",
                      "expected": {"type": "exact", "value": "Paris."}},
                     {"case_id": "times", "prompt": "Q: What is 6 times 7? A:",
                      "expected": {"type": "numeric", "value": 42}}]}
    doc.update(changes)
    return doc


def canonical_digest(doc: dict) -> str:
    from edgegate_cli.spec.promptpack_format import pack_digest

    return pack_digest(doc)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in tmp_path so files are named by short relative paths in messages."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(doc, name: str = "pack.json") -> str:
    Path(name).write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2), encoding="utf-8")
    return name


def test_add_then_add_again_then_changed(invoke, in_tmp):
    """add stores (exit 0); the same content again is a no-op (exit 0); changed content under the same
    version is PACK_VERSION_EXISTS (exit 2) with one exact line."""
    digest = canonical_digest(pack_doc())
    assert invoke("pack", "add", write(pack_doc())).stdout == f"Added smoke@1.0.0 (2 cases, sha256:{digest[:12]})\n"
    again = invoke("pack", "add", write(pack_doc(), "copy.json"))
    assert again.stdout == f"Unchanged: smoke@1.0.0 (2 cases, sha256:{digest[:12]})\n"
    changed = pack_doc()
    changed["cases"][0]["prompt"] = "Q: What is the capital of Italy? A:"
    result = invoke("pack", "add", write(changed, "changed.json"), expect=ExitCode.INVALID_INPUT)
    assert result.stderr == (f"Error [PACK_VERSION_EXISTS]: pack smoke@1.0.0 already exists with different content "
                             f"(sha256:{digest}); publish a new version\n")
    assert result.stdout == ""


def test_add_json(invoke, in_tmp):
    """--json prints one document: id, version, digest, case count, added/unchanged."""
    doc = json.loads(invoke("pack", "add", write(pack_doc()), "--json").stdout)
    assert doc == {"pack_id": "smoke", "version": "1.0.0", "sha256": "sha256:" + canonical_digest(pack_doc()),
                   "cases": 2, "status": "added"}
    assert json.loads(invoke("pack", "add", "pack.json", "--json").stdout)["status"] == "unchanged"


def _fifty_one(doc):
    doc["cases"] = [dict(doc["cases"][0], case_id=f"c{i}") for i in range(51)]


BAD = [
    (_fifty_one, "LIMIT_EXCEEDED",
     "pack.json: $.cases: 51 cases exceed the limit of 50 cases per PromptPack (split it into several packs)"),
    (lambda d: d["defaults"].update(max_new_tokens=257), "LIMIT_EXCEEDED",
     "pack.json: $.defaults.max_new_tokens: 257 new tokens exceed the limit of 256"),
    (lambda d: d["cases"][1].update(max_new_tokens=257), "LIMIT_EXCEEDED",
     "pack.json: $.cases[1].max_new_tokens: 257 new tokens for case 'times' exceed the limit of 256"),
    (lambda d: d["defaults"].update(temperature=0.7), "INVALID_INPUT",
     "pack.json: $.defaults.temperature: 0.7 is not allowed; gates must be deterministic, so PromptPacks decode "
     "greedily (temperature 0) (set it to 0 or remove it)"),
    (lambda d: d["cases"][1]["expected"].update(type="fuzzy"), "INVALID_INPUT",
     "pack.json: $.cases[1].expected.type: 'fuzzy' is not one of the allowed values (exact, contains, regex, "
     "one_of, json_schema, numeric) (rule: enum) (the schema: `edgegate schema show promptpack`)"),
    (lambda d: d["cases"][1].update(expected={"type": "regex", "pattern": "([0-9]+"}), "INVALID_INPUT",
     "pack.json: $.cases[1].expected.pattern: '([0-9]+' is not a 'regex' (rule: format) "
     "(the schema: `edgegate schema show promptpack`)"),
    (lambda d: d["cases"][1].update(expected={"type": "json_schema", "schema": {"required": "x"}}),
     "INVALID_INPUT", "pack.json: $.cases[1].expected.schema: case 'times' has an invalid JSON Schema: "
     "'x' is not of type 'array' (at $.required)"),
    (lambda d: d["cases"][1].update(case_id="paris"), "INVALID_INPUT",
     "pack.json: $.cases[1].case_id: 'paris' is also the id of $.cases[0]; case ids must be unique within a pack"),
]


@pytest.mark.parametrize("command", ["add", "validate"])
@pytest.mark.parametrize(("mutate", "code", "line"), BAD)
def test_bad_pack_exit_2_exact_line(invoke, in_tmp, fresh_home, command, mutate, code, line):
    """Each bad pack: exit 2, one stderr line `Error [CODE]: <file>: <JSON path>: ...`, nothing stored."""
    doc = pack_doc()
    mutate(doc)
    result = invoke("pack", command, write(doc), expect=ExitCode.INVALID_INPUT)
    assert result.stderr == f"Error [{code}]: {line}\n"
    assert result.stdout == ""
    if command == "validate":
        assert not fresh_home.exists()


def test_malformed_json_names_the_line(invoke, in_tmp):
    """A JSON syntax error: exit 2 naming the file, line and column."""
    result = invoke("pack", "add", write('{\n  "promptpack_id": "smoke",\n  "cases": [}\n'),
                    expect=ExitCode.INVALID_INPUT)
    assert result.stderr == "Error [INVALID_INPUT]: pack.json: line 3, column 13: malformed JSON: Expecting value\n"


def test_bad_input_under_json_is_one_error_document(invoke, in_tmp):
    """--json: the error is the one JSON document on stdout, and the line still goes to stderr."""
    doc = pack_doc()
    doc["defaults"]["max_new_tokens"] = 257
    result = invoke("pack", "add", write(doc), "--json", expect=ExitCode.INVALID_INPUT)
    assert json.loads(result.stdout) == {"error": {
        "code": "LIMIT_EXCEEDED", "exit_code": 2, "hint": None,
        "message": "pack.json: $.defaults.max_new_tokens: 257 new tokens exceed the limit of 256"}}


def test_validate_writes_no_state(invoke, in_tmp, fresh_home):
    """validate checks and prints the digest; the home is not even created."""
    result = invoke("pack", "validate", write(pack_doc()))
    short = canonical_digest(pack_doc())[:12]
    assert result.stdout == f"pack.json: valid PromptPack smoke@1.0.0 (2 cases, sha256:{short})\n"
    doc = json.loads(invoke("pack", "validate", str(GENAI_PACK), "--json").stdout)
    assert (doc["pack_id"], doc["version"], doc["cases"], doc["source"]) == ("tiny-genai-smoke", "1.0.0", 8,
                                                                            str(GENAI_PACK))
    assert not fresh_home.exists()


def test_list_and_show(invoke, in_tmp):
    """list shows every version newest first; show ID picks the newest, ID@VERSION that version."""
    assert invoke("pack", "list").stdout == "No PromptPacks yet. Add one with `edgegate pack add FILE`.\n"
    for v in ("1.0.0", "1.2.0", "1.10.0"):
        invoke("pack", "add", write(pack_doc(v), f"{v}.json"))
    listing = json.loads(invoke("pack", "list", "--json").stdout)["packs"]
    assert [p["version"] for p in listing] == ["1.10.0", "1.2.0", "1.0.0"]
    assert listing[0]["sha256"] == "sha256:" + canonical_digest(pack_doc("1.10.0"))
    table = invoke("pack", "list").stdout
    assert "\nsmoke\t1.10.0\t2\t" in table
    shown = json.loads(invoke("pack", "show", "smoke", "--json").stdout)
    assert (shown["version"], shown["document"]["cases"][0]["case_id"]) == ("1.10.0", "paris")
    human = invoke("pack", "show", "smoke@1.2.0").stdout
    short = canonical_digest(pack_doc("1.2.0"))[:12]
    assert human.splitlines()[0].startswith(f"smoke@1.2.0 sha256:{short} (2 cases, added ")
    assert "\ntimes\tQ: What is 6 times 7? A:" in human


def test_show_unknown_id_and_version(invoke, in_tmp):
    """Unknown id: exit 2 NOT_FOUND with the next command; unknown version: exit 2 listing known versions."""
    invoke("pack", "add", write(pack_doc("1.0.0")))
    invoke("pack", "add", write(pack_doc("1.1.0"), "b.json"))
    assert invoke("pack", "show", "nope", expect=2).stderr == (
        "Error [NOT_FOUND]: no PromptPack 'nope' in this home (add it with: edgegate pack add FILE)\n")
    assert invoke("pack", "show", "smoke@2.0.0", expect=2).stderr == (
        "Error [INVALID_INPUT]: smoke has no version 2.0.0 (known: 1.0.0, 1.1.0)\n")


def test_diff_files_and_refs(invoke, in_tmp):
    """diff takes files or stored refs and lists what changed."""
    invoke("pack", "add", write(pack_doc()))
    newer = pack_doc("1.1.0")
    newer["cases"][1]["expected"]["tolerance"] = 1
    newer["cases"].append({"case_id": "sky", "prompt": "Q: What color is the sky on a clear day? A:",
                           "expected": {"type": "contains", "values": ["Blue"]}})
    newer["defaults"]["max_new_tokens"] = 24
    out = invoke("pack", "diff", "smoke@1.0.0", write(newer, "newer.json"), expect=1).stdout.splitlines()
    assert out[1:] == ["+ case sky",
                       '~ case times.expected: {"type": "numeric", "value": 42} -> '
                       '{"tolerance": 1, "type": "numeric", "value": 42}',
                       "~ defaults.max_new_tokens: 16 -> 24", '~ version: "1.0.0" -> "1.1.0"']
    assert out[0].startswith("smoke@1.0.0 (") and " -> newer.json (" in out[0]
    same = json.loads(invoke("pack", "diff", "pack.json", "smoke", "--json").stdout)
    assert same["identical"] is True and same["a"] == "pack.json" and same["b"] == "smoke@1.0.0"
    assert invoke("pack", "diff", "smoke@3.0.0", "pack.json", expect=2).stderr == (
        "Error [INVALID_INPUT]: smoke has no version 3.0.0 (known: 1.0.0)\n")


def test_export(invoke, in_tmp):
    """--out writes the exact canonical bytes (sha256 = digest); without it the document goes to stdout."""
    invoke("pack", "add", write(pack_doc()))
    digest = canonical_digest(pack_doc())
    result = invoke("pack", "export", "smoke@1.0.0", "--out", "exported.json")
    size = len(Path("exported.json").read_bytes())
    assert result.stdout == f"Wrote smoke@1.0.0 to exported.json ({size} bytes, sha256:{digest[:12]})\n"
    assert hashlib.sha256(Path("exported.json").read_bytes()).hexdigest() == digest
    assert json.loads(invoke("pack", "export", "smoke@1.0.0").stdout) == json.loads(Path("exported.json").read_text())
    # the export re-adds as the same version, unchanged
    assert invoke("pack", "add", "exported.json").stdout.startswith("Unchanged: smoke@1.0.0")
    assert invoke("pack", "export", "smoke@9.0.0", expect=2).stderr == (
        "Error [INVALID_INPUT]: smoke has no version 9.0.0 (known: 1.0.0)\n")
