"""PromptPacks: the canonical form and its golden digest, load-time checks with exact messages,
immutable versions in a real home (SQLite + CAS), lookup by semver, diff and export."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from edgegate_cli.errors import ExitCode, InvalidInput, LimitExceeded, NotFound, PackVersionExists
from edgegate_cli.spec.promptpack_format import (
    canonicalize,
    check_pack,
    effective_cases,
    load_pack,
    pack_digest,
    validate_pack_file,
)
from edgegate_cli.spec.promptpacks import (
    add_pack,
    diff_packs,
    export_pack,
    get_pack,
    list_packs,
    resolve_pipeline_pack,
    semver_key,
    write_export,
)
from edgegate_cli.store.workspace import open_workspace

REPO = Path(__file__).resolve().parent.parent
GENAI_PACK = REPO / "examples" / "genai" / "pack.json"
SCHEMA_EXAMPLE = REPO / "examples" / "schemas" / "promptpack.example.json"

# The contract of promptpack_format.canonicalize, pinned: if either constant changes, every stored digest does.
GOLDEN_BYTES = (
    '{"cases":[{"case_id":"c1","expected":{"tolerance":0.5,"type":"numeric","value":42},'
    '"prompt":"Q: What is 6 times 7?\\nA:"},{"case_id":"c2","expected":{"type":"exact","value":"Hello!"},'
    '"messages":[{"content":"Say hello.","role":"user"}]}],"defaults":{"max_new_tokens":16,"temperature":0},'
    '"description":"Café, naïve — ünïcode stays as is.","promptpack_id":"golden","version":"1.0.0"}'
).encode()
GOLDEN_DIGEST = "7ece9e54e0e9bbb37a355811fef48c415c60cca0638a07826be651a1cd16ba16"

# The same pack as written by someone else: CRLF line endings in the file and in the prompt, other key
# order, trailing blanks after prompt lines and message content, 42.0 for 42, non-ASCII escaped.
GOLDEN_VARIANT = (
    '{\r\n  "version": "1.0.0",\r\n  "promptpack_id": "golden",\r\n'
    '  "description": "Caf\\u00e9, na\\u00efve \\u2014 \\u00fcn\\u00efcode stays as is.",\r\n'
    '  "cases": [\r\n'
    '    {"prompt": "Q: What is 6 times 7?  \\r\\nA:\\t\\r\\n", "case_id": "c1",\r\n'
    '     "expected": {"value": 42.0, "type": "numeric", "tolerance": 0.5}},\r\n'
    '    {"case_id": "c2", "expected": {"value": "Hello!", "type": "exact"},\r\n'
    '     "messages": [{"role": "user", "content": "Say hello. \\n\\n"}]}\r\n'
    '  ],\r\n  "defaults": {"temperature": 0, "max_new_tokens": 16}\r\n}\r\n'
)


def small_pack(**changes) -> dict:
    doc = json.loads(GOLDEN_BYTES)
    doc.update(changes)
    return doc


def write(tmp_path: Path, doc, name: str = "pack.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8", newline="")
    return path


# --- canonical form ---------------------------------------------------------------------------------


def test_golden_digest():
    """The canonical bytes and sha256 of a small pack are pinned."""
    doc = json.loads(GOLDEN_BYTES)
    assert canonicalize(doc) == GOLDEN_BYTES
    assert pack_digest(doc) == GOLDEN_DIGEST == hashlib.sha256(GOLDEN_BYTES).hexdigest()


def test_crlf_key_order_and_trailing_blanks_give_the_same_digest(tmp_path):
    """A CRLF file with other key order, CRLF and trailing blanks in prompts and 42.0 loads to the golden form."""
    path = write(tmp_path, GOLDEN_VARIANT)
    assert b"\r\n" in path.read_bytes()
    assert canonicalize(load_pack(path)) == GOLDEN_BYTES
    assert pack_digest(json.loads(GOLDEN_VARIANT)) == GOLDEN_DIGEST
    lone_cr = small_pack()
    lone_cr["cases"][0]["prompt"] = "Q: What is 6 times 7?\rA:"
    assert pack_digest(lone_cr) == GOLDEN_DIGEST


def test_only_prompts_and_contents_are_trimmed():
    """Trailing blanks elsewhere (expected values, description) are content; leading blanks in prompts too."""
    doc = small_pack()
    doc["cases"][1]["expected"]["value"] = "Hello! "
    assert pack_digest(doc) != GOLDEN_DIGEST
    doc = small_pack()
    doc["cases"][0]["prompt"] = " " + doc["cases"][0]["prompt"]
    assert pack_digest(doc) != GOLDEN_DIGEST
    doc = small_pack(description="Café, naïve — ünïcode stays as is.\r\n")
    assert canonicalize(doc).endswith(b'"description":"Caf\xc3\xa9, na\xc3\xafve \xe2\x80\x94 \xc3\xbcn\xc3\xafcode '
                                      b'stays as is.\\n","promptpack_id":"golden","version":"1.0.0"}')


def test_canonical_form_is_a_fixed_point():
    """Canonicalizing the canonical document changes nothing (what is stored re-hashes to its digest)."""
    for path in (GENAI_PACK, SCHEMA_EXAMPLE):
        doc = load_pack(path)
        assert canonicalize(json.loads(canonicalize(doc))) == canonicalize(doc)
        assert load_pack(path) == doc


def test_nan_is_refused(tmp_path):
    """Python's json accepts NaN; a pack may not carry it (the canonical form is strict JSON)."""
    path = write(tmp_path, GOLDEN_BYTES.decode().replace('"tolerance":0.5', '"tolerance":NaN'))
    with pytest.raises(InvalidInput) as info:
        load_pack(path)
    assert info.value.message == (f"{path}: $.cases[0].expected.tolerance: nan is not a finite number "
                                  "(JSON has no NaN or Infinity)")


# --- the example packs -----------------------------------------------------------------------------


def test_genai_example_pack_validates_and_is_stable():
    """examples/genai/pack.json: at most 10 cases, all six check types bar none missing, a stable digest."""
    doc = load_pack(GENAI_PACK)
    assert len(doc["cases"]) <= 10
    assert {c["expected"]["type"] for c in doc["cases"]} == {"exact", "contains", "regex", "one_of", "json_schema",
                                                             "numeric"}
    assert any("messages" in c for c in doc["cases"])
    info = validate_pack_file(GENAI_PACK)
    assert info.sha256 == "sha256:" + pack_digest(json.loads(GENAI_PACK.read_text(encoding="utf-8")))
    assert (info.pack_id, info.version, info.cases) == ("tiny-genai-smoke", "1.0.0", len(doc["cases"]))


def _tiny_model_dir() -> Path:
    for candidate in (REPO / "probe_models" / "genai_tiny", REPO / "examples" / "genai" / "model"):
        if (candidate / "genai_config.json").is_file():
            return candidate
    raise AssertionError("the tiny GenAI model is in neither probe_models/genai_tiny nor examples/genai/model")


def test_genai_example_pack_passes_on_the_tiny_model():
    """Every case of the example pack passes on the committed tiny model with greedy decoding."""
    import onnxruntime_genai as og

    from edgegate_cli.measure.scoring import score_case

    model = og.Model(str(_tiny_model_dir()))
    tokenizer = og.Tokenizer(model)
    results = {}
    for case in effective_cases(load_pack(GENAI_PACK)):
        prompt = case.get("prompt") or tokenizer.apply_chat_template(json.dumps(case["messages"]),
                                                                      add_generation_prompt=True)
        ids = tokenizer.encode(prompt)
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=len(ids) + case["max_new_tokens"])
        generator = og.Generator(model, params)
        generator.append_tokens(ids)
        tokens = []
        while not generator.is_done():
            generator.generate_next_token()
            tokens.append(int(generator.get_next_tokens()[0]))
        output = tokenizer.decode([t for t in tokens if t not in tokenizer.eos_token_ids])
        results[case["case_id"]] = score_case(case["expected"], output).passed
    assert results == dict.fromkeys(results, True)


def test_effective_cases_resolve_max_new_tokens():
    """A case's own max_new_tokens wins; else the pack's default; else 128."""
    doc = load_pack(GENAI_PACK)
    assert {c["case_id"]: c["max_new_tokens"] for c in effective_cases(doc)}["times"] == 8
    assert effective_cases(doc)[0]["max_new_tokens"] == 32
    doc.pop("defaults")
    assert effective_cases(doc)[0]["max_new_tokens"] == 128


# --- load-time checks ------------------------------------------------------------------------------


def _many_cases(doc, n=51):
    doc["cases"] = [dict(doc["cases"][0], case_id=f"c{i}") for i in range(n)]


def _case(i, **changes):
    return lambda doc: doc["cases"][i].update(changes)


def _expected(i, **changes):
    return lambda doc: doc["cases"][i]["expected"].update(changes)


REFUSED = [
    (_many_cases, LimitExceeded, "$.cases: 51 cases exceed the limit of 50 cases per PromptPack"),
    (lambda d: d["defaults"].update(max_new_tokens=257), LimitExceeded,
     "$.defaults.max_new_tokens: 257 new tokens exceed the limit of 256"),
    (_case(1, max_new_tokens=257), LimitExceeded,
     "$.cases[1].max_new_tokens: 257 new tokens for case 'c2' exceed the limit of 256"),
    (lambda d: d["defaults"].update(temperature=0.7), InvalidInput,
     "$.defaults.temperature: 0.7 is not allowed; gates must be deterministic, so PromptPacks decode greedily "
     "(temperature 0)"),
    (_case(1, case_id="c1"), InvalidInput,
     "$.cases[1].case_id: 'c1' is also the id of $.cases[0]; case ids must be unique within a pack"),
    (_expected(1, type="fuzzy"), InvalidInput,
     "$.cases[1].expected.type: 'fuzzy' is not one of the allowed values (exact, contains, regex, one_of, "
     "json_schema, numeric) (rule: enum)"),
    (lambda d: d["cases"][1].update(expected={"type": "regex", "pattern": "(a"}), InvalidInput,
     "$.cases[1].expected.pattern: '(a' is not a 'regex' (rule: format)"),
    (lambda d: d["cases"][1].update(expected={"type": "json_schema", "schema": {"type": "objekt"}}), InvalidInput,
     "$.cases[1].expected.schema: case 'c2' has an invalid JSON Schema: 'objekt' is not valid under any of the "
     "given schemas (at $.type)"),
]


@pytest.mark.parametrize(("mutate", "error", "message"), REFUSED)
def test_load_pack_refuses(tmp_path, mutate, error, message):
    """Each bad pack is refused with its error class (exit 2) and one line naming the file and JSON path."""
    doc = small_pack()
    mutate(doc)
    path = write(tmp_path, doc)
    with pytest.raises(error) as info:
        load_pack(path)
    assert type(info.value) is error
    assert info.value.message == f"{path}: {message}"
    assert info.value.exit_code == ExitCode.INVALID_INPUT


def test_fifty_cases_and_256_tokens_are_allowed(tmp_path):
    """The limits are inclusive."""
    doc = small_pack(defaults={"max_new_tokens": 256, "temperature": 0})
    _many_cases(doc, 50)
    assert len(load_pack(write(tmp_path, doc))["cases"]) == 50


def test_invalid_regex_is_caught_in_code_too():
    """check_pack compiles patterns itself (the schema's `format: regex` depends on jsonschema's checker)."""
    doc = small_pack()
    doc["cases"][1]["expected"] = {"type": "regex", "pattern": "(a"}
    with pytest.raises(InvalidInput) as info:
        check_pack(doc, "p.json")
    assert info.value.message == ("p.json: $.cases[1].expected.pattern: case 'c2' has an invalid regex: "
                                  "missing ), unterminated subpattern at position 0")


def test_malformed_json_names_the_line(tmp_path):
    """A syntax error is reported with its line and column."""
    path = write(tmp_path, '{\n  "promptpack_id": "x",\n  "cases": [,]\n}')
    with pytest.raises(InvalidInput) as info:
        load_pack(path)
    assert info.value.message == f"{path}: line 3, column 13: malformed JSON: Expecting value"


# --- stored versions --------------------------------------------------------------------------------


def test_add_stores_row_blob_reference_and_audit(tmp_path):
    """add_pack stores the canonical JSON and digest, the canonical bytes in the CAS, a pack reference
    that keeps the blob, and an audit event; the same file again is `unchanged` and writes nothing."""
    ws = open_workspace()
    path = write(tmp_path, GOLDEN_VARIANT)
    result = add_pack(ws, path)
    assert result.model_dump() == {"pack_id": "golden", "version": "1.0.0", "sha256": "sha256:" + GOLDEN_DIGEST,
                                   "cases": 2, "status": "added"}
    [row] = ws.db.query("SELECT * FROM promptpacks")
    assert (row["sha256"], row["json"].encode(), row["published"]) == (GOLDEN_DIGEST, GOLDEN_BYTES, 1)
    assert ws.cas.read_bytes(GOLDEN_DIGEST, verify=True) == GOLDEN_BYTES
    assert list(ws.db.query("SELECT ref_kind, ref_id FROM artifact_refs WHERE sha256 = ?", [GOLDEN_DIGEST])) == [
        {"ref_kind": "pack", "ref_id": "golden@1.0.0"}]
    [audit] = ws.db.query("SELECT command, event, detail_json FROM audit_events")
    assert (audit["command"], audit["event"]) == ("pack add", "pack_added")
    assert json.loads(audit["detail_json"])["sha256"] == "sha256:" + GOLDEN_DIGEST
    again = add_pack(ws, write(tmp_path, GOLDEN_BYTES.decode(), "same.json"))
    assert again.status == "unchanged"
    assert ws.db["audit_events"].count == 1 and ws.db["promptpacks"].count == 1


def test_changed_content_under_the_same_version_is_refused(tmp_path):
    """A version is immutable: a changed prompt under 1.0.0 is PACK_VERSION_EXISTS (exit 2), nothing stored."""
    ws = open_workspace()
    add_pack(ws, write(tmp_path, GOLDEN_VARIANT))
    doc = small_pack()
    doc["cases"][0]["prompt"] = "Q: What is 7 times 6?\nA:"
    with pytest.raises(PackVersionExists) as info:
        add_pack(ws, write(tmp_path, doc, "changed.json"))
    assert info.value.message == (f"pack golden@1.0.0 already exists with different content (sha256:{GOLDEN_DIGEST}); "
                                  "publish a new version")
    assert (info.value.code, info.value.exit_code) == ("PACK_VERSION_EXISTS", ExitCode.INVALID_INPUT)
    assert [r["sha256"] for r in ws.db.query("SELECT sha256 FROM promptpacks")] == [GOLDEN_DIGEST]


def _add_versions(ws, tmp_path, *versions):
    for v in versions:
        add_pack(ws, write(tmp_path, small_pack(version=v), f"{v}.json"))


def test_get_pack_picks_the_newest_by_semver(tmp_path):
    """`ID` resolves to the highest semver precedence (1.10.0 > 1.9.0; 2.0.0-rc.1 > 1.10.0; a release >
    its pre-release), not to the newest added; `ID@V` to V."""
    ws = open_workspace()
    _add_versions(ws, tmp_path, "1.9.0", "1.10.0", "1.0.0")
    assert get_pack(ws, "golden").version == "1.10.0"
    _add_versions(ws, tmp_path, "2.0.0-rc.1")
    assert get_pack(ws, "golden").version == "2.0.0-rc.1"
    _add_versions(ws, tmp_path, "2.0.0")
    pack = get_pack(ws, "golden")
    assert (pack.version, pack.cases) == ("2.0.0", 2)
    assert pack.document == json.loads(canonicalize(small_pack(version="2.0.0")))
    assert get_pack(ws, "golden@1.9.0").version == "1.9.0"
    assert [(p.pack_id, p.version) for p in list_packs(ws).packs] == [
        ("golden", v) for v in ("2.0.0", "2.0.0-rc.1", "1.10.0", "1.9.0", "1.0.0")]


def test_unknown_id_and_version(tmp_path):
    """An unknown id is NOT_FOUND; an unknown version is INVALID_INPUT listing the known versions."""
    ws = open_workspace()
    _add_versions(ws, tmp_path, "1.1.0", "1.0.0")
    with pytest.raises(NotFound) as info:
        get_pack(ws, "nope")
    assert (info.value.message, info.value.hint) == ("no PromptPack 'nope' in this home",
                                                     "add it with: edgegate pack add FILE")
    with pytest.raises(InvalidInput) as info:
        get_pack(ws, "golden@9.9.9")
    assert info.value.message == "golden has no version 9.9.9 (known: 1.0.0, 1.1.0)"


def test_resolve_pipeline_pack_names_the_pipeline(tmp_path):
    """The runner's lookup: errors name the pipeline file and its $.promptpack field."""
    ws = open_workspace()
    _add_versions(ws, tmp_path, "1.0.0", "1.1.0")
    assert resolve_pipeline_pack(ws, "golden", "1.1.0", "pipe.yaml").sha256 == "sha256:" + pack_digest(
        small_pack(version="1.1.0"))
    with pytest.raises(InvalidInput) as info:
        resolve_pipeline_pack(ws, "golden", "1.2.0", "pipe.yaml")
    assert info.value.message == "pipe.yaml: $.promptpack.version: golden has no version 1.2.0 (known: 1.0.0, 1.1.0)"
    with pytest.raises(NotFound) as info:
        resolve_pipeline_pack(ws, "other", "1.0.0", "pipe.yaml")
    assert info.value.message == "pipe.yaml: $.promptpack.id: no PromptPack 'other' in this home"


def test_export_returns_the_canonical_bytes(tmp_path):
    """export_pack gives bytes whose sha256 is the digest; write_export writes them to a file."""
    ws = open_workspace()
    add_pack(ws, write(tmp_path, GOLDEN_VARIANT))
    assert export_pack(ws, "golden@1.0.0") == GOLDEN_BYTES
    out = tmp_path / "out" / "golden.json"
    out.parent.mkdir()
    result = write_export(ws, "golden", out)
    assert out.read_bytes() == GOLDEN_BYTES
    assert (result.out, result.bytes, result.sha256) == (str(out), len(GOLDEN_BYTES), "sha256:" + GOLDEN_DIGEST)
    assert [p.name for p in out.parent.iterdir()] == ["golden.json"]  # no temp file left behind
    with pytest.raises(InvalidInput) as info:
        write_export(ws, "golden", tmp_path / "missing" / "x.json")
    missing = tmp_path / "missing"
    assert info.value.message == f"--out {missing / 'x.json'}: cannot be written: no directory {missing}"


def test_semver_precedence():
    """semver 2.0 precedence: numeric identifiers numerically, pre-releases before the release."""
    versions = ["1.0.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
                "1.0.0-beta.11", "1.0.0-rc.1", "0.9.9", "1.0.10", "1.0.2"]
    assert sorted(versions, key=semver_key) == ["0.9.9", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
                                                "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",
                                                "1.0.0", "1.0.2", "1.0.10"]


# --- diff -------------------------------------------------------------------------------------------


def test_diff_packs():
    """Cases added, removed and changed (by case_id, with the fields), effective defaults, other fields."""
    a = json.loads(GOLDEN_BYTES)
    b = copy.deepcopy(a)
    b["version"] = "1.1.0"
    b["cases"][0]["expected"]["tolerance"] = 0
    b["cases"][0]["max_new_tokens"] = 4
    b["cases"].pop(1)
    b["cases"].append({"case_id": "c3", "prompt": "Q: Hi A:", "expected": {"type": "exact", "value": "Hi"}})
    b.pop("defaults")
    d = diff_packs(a, b, "golden@1.0.0", "new.json")
    assert d.model_dump() == {
        "a": "golden@1.0.0", "b": "new.json", "a_sha256": "sha256:" + GOLDEN_DIGEST,
        "b_sha256": "sha256:" + pack_digest(b), "identical": False, "added": ["c3"], "removed": ["c2"],
        "changed": [{"case_id": "c1", "fields": ["expected", "max_new_tokens"], "values": {
            "expected": {"a": a["cases"][0]["expected"], "b": b["cases"][0]["expected"]},
            "max_new_tokens": {"a": a["cases"][0].get("max_new_tokens"), "b": 4}}}], "order_changed": False,
        "defaults_changed": {"max_new_tokens": {"a": 16, "b": 128}}, "fields_changed": ["version"],
        "field_values": {"version": {"a": "1.0.0", "b": "1.1.0"}}}
    same = diff_packs(a, json.loads(canonicalize(json.loads(GOLDEN_VARIANT))))
    assert same.identical and not (same.added or same.removed or same.changed or same.defaults_changed)
    swapped = copy.deepcopy(a)
    swapped["cases"].reverse()
    assert diff_packs(a, swapped).order_changed
