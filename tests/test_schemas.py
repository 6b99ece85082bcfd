"""Every schema in schemas/ is valid draft 2020-12, its example validates, and broken copies fail
with one line naming the file, the JSON path and the rule (SPEC §3, STYLE 10)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from edgegate_cli.errors import InvalidInput
from edgegate_cli.spec.schemas import SCHEMA_NAMES, load_document, load_schema, parse_file, schemas_dir

REPO = Path(__file__).resolve().parent.parent
NAMES = sorted(p.name.removesuffix(".schema.json") for p in (REPO / "schemas").glob("*.schema.json"))
EXAMPLES = REPO / "examples" / "schemas"


def example_path(name: str):
    found = [p for ext in ("json", "yaml", "yml") if (p := EXAMPLES / f"{name}.example.{ext}").is_file()]
    assert found, f"no examples/schemas/{name}.example.(json|yaml) for schemas/{name}.schema.json"
    return found[0]


def broken(tmp_path, name: str, mutate) -> tuple[str, InvalidInput]:
    """Write a mutated copy of the example to tmp_path; return its path and the error loading it."""
    doc = copy.deepcopy(parse_file(example_path(name)))
    mutate(doc)
    path = tmp_path / f"{name}.broken.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InvalidInput) as info:
        load_document(path, name)
    return str(path), info.value


def test_schema_names_match_files_and_examples():
    """SCHEMA_NAMES lists exactly the files in schemas/, and each has an example."""
    assert set(SCHEMA_NAMES) == set(NAMES)
    for name in SCHEMA_NAMES:
        assert (schemas_dir() / f"{name}.schema.json").is_file()
        assert example_path(name).is_file()


@pytest.mark.parametrize("name", NAMES)
def test_schema_is_valid_draft_2020_12(name):
    """The schema itself is a valid draft 2020-12 document with EdgeGate's $id and a title."""
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://edgegate.dev/schemas/{name}.schema.json"
    assert schema["title"] and schema["description"]


@pytest.mark.parametrize("name", NAMES)
def test_example_validates(name):
    """The example loads through the single loader unchanged."""
    path = example_path(name)
    assert load_document(path, name) == parse_file(path)


# --- generic broken copies, for every schema -------------------------------------------------------


def _children(doc, schema: dict, root: dict):
    """(key, value, subschema) for the children of `doc` whose schema is stated plainly."""
    schema = _deref(schema, root)
    if isinstance(doc, dict):
        for key, value in doc.items():
            sub = schema.get("properties", {}).get(key, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                yield key, value, sub
    elif isinstance(doc, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(doc):
            yield i, value, schema["items"]


def _deref(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        node = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _walk(doc, schema: dict, root: dict, path=()):
    """Depth-first (path, value, schema) over the example, following properties/items/$ref."""
    yield path, doc, _deref(schema, root)
    for key, value, sub in _children(doc, schema, root):
        yield from _walk(value, sub, root, (*path, key))


def _json_path(parts) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _set(doc, path, value):
    for p in path[:-1]:
        doc = doc[p]
    doc[path[-1]] = value


WRONG = {"string": 12345, "integer": "not-a-number", "number": "not-a-number", "boolean": "yes",
         "array": "not-a-list", "object": "not-an-object"}


@pytest.mark.parametrize("name", NAMES)
def test_broken_copy_nested_wrong_type(tmp_path, name):
    """A nested field of the wrong type is reported at its JSON path with rule `type`."""
    root = load_schema(name)
    doc = parse_file(example_path(name))
    target = max(((p, s["type"]) for p, _, s in _walk(doc, root, root)
                  if len(p) >= 2 and isinstance(s.get("type"), str) and s["type"] in WRONG),
                 key=lambda t: len(t[0]))  # the deepest, to exercise nested paths
    path, err = broken(tmp_path, name, lambda d: _set(d, target[0], WRONG[target[1]]))
    assert err.message.startswith(f"{path}: {_json_path(target[0])}: ")
    assert err.message.endswith(" (rule: type)")
    assert (err.path, err.field) == (path, _json_path(target[0]))


@pytest.mark.parametrize("name", NAMES)
def test_broken_copy_missing_required(tmp_path, name):
    """Dropping a required top-level field names the field, at `$`, with rule `required`."""
    key = load_schema(name)["required"][0]
    path, err = broken(tmp_path, name, lambda d: d.pop(key))
    assert err.message == f"{path}: $: {key!r} is a required property (rule: required)"


@pytest.mark.parametrize("name", NAMES)
def test_broken_copy_unknown_key(tmp_path, name):
    """An unknown key where additionalProperties is false is named, with its object's JSON path."""
    root = load_schema(name)
    doc = parse_file(example_path(name))
    where = max((p for p, v, s in _walk(doc, root, root)
                 if isinstance(v, dict) and s.get("additionalProperties") is False), key=len)
    path, err = broken(tmp_path, name, lambda d: _set(d, (*where, "zz_unknown"), 1))
    allowed = ", ".join(_schema_at(root, doc, where)["properties"])
    assert err.message == (f"{path}: {_json_path(where)}: unknown key 'zz_unknown' (allowed: {allowed}) "
                           "(rule: additionalProperties)")


def _schema_at(root, doc, where):
    return next(s for p, v, s in _walk(doc, root, root) if p == where)


def test_unknown_key_gets_a_did_you_mean(tmp_path):
    """A misspelt key is named with the closest allowed one, as enum values are."""
    path, err = broken(tmp_path, "pipeline", lambda d: d.update(gatess=d["gates"]))
    assert err.message == f"{path}: $: unknown key 'gatess'; did you mean 'gates'? (rule: additionalProperties)"


# --- exact messages for the PromptPack and model metadata -----------------------------------------


def _case(i, **changes):
    def mutate(d):
        d["cases"][i].update(changes)
    return mutate


PROMPTPACK_BROKEN = [
    (lambda d: d["cases"][1]["expected"].update(value="fifty-one"),
     "$.cases[1].expected.value: 'fifty-one' is not of type 'number' (rule: type)"),
    (lambda d: d["cases"][0].pop("expected"), "$.cases[0]: 'expected' is a required property (rule: required)"),
    (lambda d: d["cases"][0]["expected"].pop("values"),
     "$.cases[0].expected: 'values' is a required property (rule: required)"),
    (lambda d: d.update(owner="ml-team"),
     "$: unknown key 'owner' (allowed: promptpack_id, version, description, defaults, cases) "
     "(rule: additionalProperties)"),
    (lambda d: d["cases"][2]["expected"].update(values=["ready"]),
     "$.cases[2].expected: 'values' is not one of the allowed values; did you mean value? (rule: enum)"),
    (lambda d: d["cases"][0]["expected"].update(type="exactly"),
     "$.cases[0].expected.type: 'exactly' is not one of the allowed values; did you mean exact? (rule: enum)"),
    (lambda d: d["cases"][0].pop("prompt"), "$.cases[0]: 'prompt' is a required property (rule: required)"),
    (_case(2, prompt="Say: ready"),
     "$.cases[2]: 'prompt' should not be valid under {'const': 'prompt'} (rule: not)"),
    (lambda d: d["cases"][4]["expected"].update(pattern="(["),
     "$.cases[4].expected.pattern: '([' is not a 'regex' (rule: format)"),
    (lambda d: d["cases"][2]["messages"][0].update(role="bot"),
     "$.cases[2].messages[0].role: 'bot' is not one of the allowed values (system, user, assistant) (rule: enum)"),
    (lambda d: d["defaults"].update(temperature=0.7), "$.defaults.temperature: 0 was expected (rule: const)"),
    (lambda d: d["defaults"].update(max_new_tokens=0),
     "$.defaults.max_new_tokens: 0 is less than the minimum of 1 (rule: minimum)"),
    (lambda d: d["cases"].clear(), "$.cases: [] should be non-empty (rule: minItems)"),
    (lambda d: d.update(promptpack_id="Assistant Smoke"),
     "$.promptpack_id: 'Assistant Smoke' does not match '^[a-z0-9][a-z0-9._-]{0,63}$' (rule: pattern)"),
]


@pytest.mark.parametrize(("mutate", "expected"), PROMPTPACK_BROKEN)
def test_promptpack_broken_exact_message(tmp_path, mutate, expected):
    """Each broken PromptPack fails with the exact line: file, JSON path, what is wrong, the rule."""
    path, err = broken(tmp_path, "promptpack", mutate)
    assert err.message == f"{path}: {expected}"
    assert err.hint == "the schema: `edgegate schema show promptpack`"


def test_promptpack_version_must_be_semver(tmp_path):
    """`1.2` is refused by the semver pattern at $.version; `1.2.0-rc.1+build.5` is accepted."""
    path, err = broken(tmp_path, "promptpack", lambda d: d.update(version="1.2"))
    assert err.message.startswith(f"{path}: $.version: '1.2' does not match ")
    assert err.message.endswith(" (rule: pattern)")
    doc = parse_file(example_path("promptpack")) | {"version": "1.2.0-rc.1+build.5"}
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(doc), encoding="utf-8")
    assert load_document(ok, "promptpack")["version"] == "1.2.0-rc.1+build.5"


def test_promptpack_limits_are_left_to_code(tmp_path):
    """51 cases and max_new_tokens 512 pass the schema: those limits are LIMIT_EXCEEDED in code."""
    doc = parse_file(example_path("promptpack"))
    doc["defaults"]["max_new_tokens"] = 512
    doc["cases"] = [dict(doc["cases"][0], case_id=f"c{i}") for i in range(51)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert len(load_document(path, "promptpack")["cases"]) == 51


MODEL_METADATA_BROKEN = [
    (lambda d: d.pop("framework"), "$: 'framework' is a required property (rule: required)"),
    (lambda d: d.update(author="me"),
     "$: unknown key 'author' (allowed: name, version, description, framework, input_specs, reference_outputs, "
     "labels) (rule: additionalProperties)"),
    (lambda d: d.update(labels="cat"), "$.labels: 'cat' is not of type 'array' (rule: type)"),
    (lambda d: d.update(framework="keras"),
     "$.framework: 'keras' is not one of the allowed values (onnx, onnx_external, aimet, torchscript, tflite) "
     "(rule: enum)"),
    (lambda d: d["input_specs"]["image"].update(dtype="float64"),
     "$.input_specs.image.dtype: 'float64' is not one of the allowed values; did you mean float16, float32? "
     "(rule: enum)"),
    (lambda d: d["input_specs"]["image"].pop("shape"),
     "$.input_specs.image: 'shape' is a required property (rule: required)"),
    (lambda d: d["input_specs"]["image"]["shape"].__setitem__(0, 0),
     "$.input_specs.image.shape[0]: 0 is not valid under any of the given schemas (rule: anyOf)"),
    (lambda d: d.update(reference_outputs="ref.npy"),
     "$.reference_outputs: 'ref.npy' does not match '\\\\.npz$' (rule: pattern)"),
]


@pytest.mark.parametrize(("mutate", "expected"), MODEL_METADATA_BROKEN)
def test_model_metadata_broken_exact_message(tmp_path, mutate, expected):
    """Each broken model metadata file fails with the exact line naming file, path and rule."""
    path, err = broken(tmp_path, "model_metadata", mutate)
    assert err.message == f"{path}: {expected}"


def test_model_metadata_symbolic_dimension_accepted(tmp_path):
    """A dynamic dimension may be named (`batch`); TorchScript metadata needs no reference outputs."""
    doc = {"name": "tiny", "framework": "torchscript",
           "input_specs": {"x": {"shape": ["batch", 8], "dtype": "float32"}}}
    path = tmp_path / "meta.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")  # JSON is valid YAML
    assert load_document(path, "model_metadata") == doc


PIPELINE_BROKEN = [
    (lambda d: d["gates"][4].update(baseline_mode="interleaved"),
     "$.gates[4].baseline_mode: 'interleaved' is not one of the allowed values (paired, recorded) (rule: enum)"),
    (lambda d: d["run_policy"]["noisy_host"].update(starved_off_cpu=0),
     "$.run_policy.noisy_host.starved_off_cpu: 0 is less than or equal to the minimum of 0 (rule: exclusiveMinimum)"),
    (lambda d: d["run_policy"]["noisy_host"].update(max_starved_share=1.5),
     "$.run_policy.noisy_host.max_starved_share: 1.5 is greater than the maximum of 1 (rule: maximum)"),
]


@pytest.mark.parametrize(("mutate", "expected"), PIPELINE_BROKEN)
def test_pipeline_paired_and_noisy_host_fields_broken_exact_message(tmp_path, mutate, expected):
    """baseline_mode and run_policy.noisy_host (issue 11): a bad value is named with its JSON path and rule."""
    path, err = broken(tmp_path, "pipeline", mutate)
    assert err.message == f"{path}: {expected}"
