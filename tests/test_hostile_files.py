"""Issue 10, items 13, 14, 16, 17 and 18: hostile pipelines, packs, profiles and paths, each through the CLI,
end with their documented exit code and one line, never a traceback, a hang or a blown-up memory."""

from __future__ import annotations

import json
import os
import threading

import pytest
from conftest import REPO

QUICKSTART = REPO / "examples" / "quickstart" / "model.onnx"
BASE = f"name: p\nbackend: local\ndevices: ['local:cpu']\nmodel: {{path: '{QUICKSTART}'}}\n"
GATES = "gates: [{metric: latency_ms, op: '<=', value: 100}]\n"

LAUGHS = ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
          "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
          "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
          "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
          "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\nname: [*i]\n")


def test_yaml_billion_laughs_pipeline_is_refused_at_once(tmp_path, invoke):
    """A ~500-byte pipeline of nested aliases: exit 2 naming the first alias, before any expansion."""
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS)
    assert len(LAUGHS) < 600
    result = invoke("run", path, expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: {path}: line 2, column 8: YAML alias *a is not accepted; "
                             "write the value out instead\n")


def test_yaml_billion_laughs_pack_is_refused(tmp_path, invoke):
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS)
    result = invoke("pack", "validate", path, expect=2)
    assert result.stderr.startswith(f"Error [INVALID_INPUT]: {path}: line 2, column 8: YAML alias *a is not")


@pytest.mark.parametrize("kind", ["pipeline", "pack", "model", "profile", "key"])
def test_a_fifo_is_refused_not_waited_on(tmp_path, invoke, kind):
    """A FIFO as pipeline, pack, model, Genie profile or key file: exit 2 at once (a reader would block forever)."""
    fifo = tmp_path / {"pipeline": "p.yaml", "pack": "pack.json", "model": "m.onnx", "profile": "g.json",
                       "key": "k.pem"}[kind]
    os.mkfifo(fifo)
    args = {"pipeline": ("run", fifo), "pack": ("pack", "validate", fifo), "profile": None, "key": None,
            "model": None}[kind]
    if kind == "model":
        (tmp_path / "p.yaml").write_text(BASE.replace(str(QUICKSTART), str(fifo)) + GATES)
        args = ("run", tmp_path / "p.yaml")
    elif kind == "profile":
        (tmp_path / "p.yaml").write_text(BASE + GATES)
        args = ("run", tmp_path / "p.yaml", "--evidence", f"local:cpu=genie:{fifo}")
    elif kind == "key":
        args = ("verify", REPO / "tests" / "data" / "golden" / "golden-relative.zip", "--key", fifo)
    done = {}
    worker = threading.Thread(target=lambda: done.setdefault("result", invoke(*args, expect=2)), daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # unblock the reader so the test process can end, then fail
        open(fifo, "wb").close()
        pytest.fail(f"{kind}: still blocked on the FIFO after 30 s")
    assert "is a FIFO" in done["result"].stderr and done["result"].stderr.count("\n") == 1, done["result"].stderr


@pytest.mark.parametrize("field", ["version", "promptpack_id"])
def test_a_trailing_line_feed_cannot_pass_for_the_same_pack_version(tmp_path, invoke, field):
    """`"version": "1.0.0\\n"` used to pass the $-anchored pattern and add a second "1.0.0" with other content."""
    doc = {"promptpack_id": "smoke", "version": "1.0.0",
           "cases": [{"case_id": "c", "prompt": "Q?", "expected": {"type": "exact", "value": "A"}}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    invoke("pack", "add", tmp_path / "a.json")
    doc[field] += "\n"
    doc["cases"][0]["expected"]["value"] = "B"
    (tmp_path / "b.json").write_text(json.dumps(doc))
    result = invoke("pack", "add", tmp_path / "b.json", expect=2)
    shown = json.dumps(doc[field]).replace('"', "'")
    assert result.stderr.startswith(f"Error [INVALID_INPUT]: {tmp_path / 'b.json'}: $.{field}: {shown} does not "
                                    "match '^")
    assert len(json.loads(invoke("pack", "list", "--json").stdout)["packs"]) == 1


def test_case_ids_and_pipeline_names_are_anchored_too(tmp_path, invoke):
    (tmp_path / "p.yaml").write_text(BASE.replace("name: p", 'name: "p\\n"') + GATES)
    result = invoke("run", tmp_path / "p.yaml", expect=2)
    assert result.stderr.startswith(f"Error [INVALID_INPUT]: {tmp_path / 'p.yaml'}: $.name: 'p\\n' does not match")
    doc = {"promptpack_id": "smoke", "version": "1.0.0",
           "cases": [{"case_id": "c\n", "prompt": "Q?", "expected": {"type": "exact", "value": "A"}}]}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    result = invoke("pack", "validate", tmp_path / "c.json", expect=2)
    assert result.stderr.startswith(f"Error [INVALID_INPUT]: {tmp_path / 'c.json'}: $.cases[0].case_id: 'c\\n' does")


DEEP = 100_000


@pytest.mark.parametrize(("name", "text", "message"), [
    ("deep.json", "[" * DEEP + "]" * DEEP, "nested more than 64 levels deep"),
    ("deep.yaml", "[" * DEEP + "]" * DEEP, "nested more than 64 levels deep"),
    ("bigint.json", '{"name": ' + "9" * 5000 + "}", None),
    ("bigint.yaml", "name: 0x" + "f" * 5000 + "\n", "$.name: an integer of 20000 bits is too large (at most 64)"),
    ("nan.yaml", BASE + "gates: [{metric: latency_ms, op: '<=', value: .nan}]\n",
     "$.gates[0].value: nan is not a finite number (JSON has no NaN or Infinity)"),
    ("date.yaml", BASE + "description: 2024-01-01\n" + GATES,
     "$.description: a YAML date is not a JSON value; quote it"),
])
def test_nesting_numbers_and_yaml_types_are_exit_2(tmp_path, invoke, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    result = invoke("run", path, expect=2)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    if message is None:  # Python's own refusal of a 5,000-digit integer, as one line
        assert result.stderr.startswith(f"Error [INVALID_INPUT]: {path}: Exceeds the limit (4300 digits)")
    else:
        assert result.stderr == f"Error [INVALID_INPUT]: {path}: {message}\n"


@pytest.mark.parametrize(("pattern", "why"), [
    ("a{4294967296}", "the repetition number is too large"),
    ("(" * 1000 + "a" + ")" * 1000, "groups nested more than 50 deep"),
])
def test_hostile_regex_checks_are_exit_2(tmp_path, invoke, pattern, why):
    doc = {"promptpack_id": "smoke", "version": "1.0.0",
           "cases": [{"case_id": "c", "prompt": "Q?", "expected": {"type": "regex", "pattern": pattern}}]}
    path = tmp_path / "re.json"
    path.write_text(json.dumps(doc))
    result = invoke("pack", "validate", path, expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: {path}: $.cases[0].expected.pattern: case 'c' has an "
                             f"invalid regex: {why}\n")


@pytest.mark.parametrize(("quantity", "message"), [
    ('{"value": 1' + "0" * 400 + ', "unit": "us"}',
     "$.components[0].events[0].time-to-first-token.value: an integer of 1329 bits is too large (at most 64)"),
    ('{"value": 5, "unit": ["us"]}',
     "$.components[0].events[0].time-to-first-token.unit: ['us'] is not a unit name (a string) (expected the JSON "
     "written by genie-t2t-run --profile)"),
])
def test_hostile_genie_values_are_exit_2(tmp_path, invoke, quantity, message):
    profile = tmp_path / "g.json"
    rate = '{"value": 10, "unit": "toks/sec"}'
    profile.write_text('{"components": [{"name": "dialog0", "events": [{"type": "GenieDialog_query", '
                       f'"time-to-first-token": {quantity}, "token-generation-rate": {rate}, '
                       f'"prompt-processing-rate": {rate}}}]}}]}}')
    (tmp_path / "p.yaml").write_text(BASE + GATES)
    result = invoke("run", tmp_path / "p.yaml", "--evidence", f"local:cpu=genie:{profile}", expect=2)
    assert result.stderr == f"Error [INVALID_INPUT]: {profile}: {message}\n"


def test_a_300_character_path_component_is_exit_2_and_stores_no_internal_run(probed_home, tmp_path, invoke):
    """A relative gate whose baseline is a 300-character name: exit 2 (not found), never `error: INTERNAL`."""
    long = "b" * 300 + ".zip"
    (tmp_path / "p.yaml").write_text(BASE + f"gates: [{{metric: latency_ms, baseline: '{long}', "
                                            "max_regression_pct: 10}]\n")
    result = invoke("run", tmp_path / "p.yaml", expect=2)
    assert result.stderr == (f"Error [INVALID_INPUT]: {tmp_path / 'p.yaml'}: $.gates[0].baseline: {long}: file name "
                             "too long\n")
    stored = json.loads(invoke("runs", "list", "--json").stdout)["runs"]
    assert all(r["error_code"] != "INTERNAL" for r in stored)
    result = invoke("gate", "check", "x" * 300, expect=2)
    assert result.stderr == (f"Error [NOT_FOUND]: no run {'x' * 300!r} in this home (list runs with `edgegate runs "
                             "list`)\n")
