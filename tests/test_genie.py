"""Genie profiles: the real `genie-t2t-run --profile` JSON (tests/data/genie_profile_llama3_2_1b_xiaomi15.json,
a copy of shared reference/aihub/data/, Llama 3.2 1B on a Xiaomi 15) parses to its exact numbers, maps
through GENIE_CANDIDATES onto ttft_ms / tps / prompt_tps, and a malformed profile is refused with exit 2
naming the file and the missing field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from edgegate_cli.errors import ExitCode, InvalidInput
from edgegate_cli.measure.genie import GENIE_CANDIDATES, PAYLOAD_FORMAT, parse_genie_profile
from edgegate_cli.measure.mapping import compute_metrics, derive_mapping

REFERENCE = Path(__file__).resolve().parent / "data" / "genie_profile_llama3_2_1b_xiaomi15.json"
HINT = "expected the JSON written by genie-t2t-run --profile"


def reference_doc() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def write(tmp_path: Path, doc, name: str = "profile.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def test_reference_profile_exact_numbers():
    """TTFT 531665 µs -> 531.665 ms, 38.525... tok/s decode, 1547.98... tok/s prompt, 823 + 200 tokens."""
    ev = parse_genie_profile(REFERENCE)
    assert (ev.ttft_ms, ev.tps, ev.prompt_tps) == (531.665, 38.52525329589844, 1547.9876708984375)
    assert ev.init_time_us == 1124713.0
    assert ev.sha256 == "sha256:4a673dc5fe55a8fc8c1ac5cdf00e3481610db7e380e4ae48a9fba6d73bb75dcd"
    [q] = ev.queries
    assert q.model_dump() == {
        "component": "dialog0", "event_index": 1, "ttft_us": 531665.0, "tps": 38.52525329589844,
        "prompt_tps": 1547.9876708984375, "num_prompt_tokens": 823, "num_generated_tokens": 200,
        "token_generation_time_us": 5191579.0, "duration_us": 5726945.0}
    assert ev.payload == {"format": PAYLOAD_FORMAT, "artifact_type": "GENIE_PROFILE", "init_time_us": 1124713.0,
                          "queries": [q.model_dump()]}
    json.dumps(ev.payload, allow_nan=False)  # the payload is plain JSON, ready for the CAS


def test_reference_profile_maps_to_canonical_metrics():
    """Through the metric-mapping mechanism (µs -> ms at the mapping): ttft_ms, tps and prompt_tps."""
    payload = parse_genie_profile(REFERENCE).payload
    mapping = derive_mapping("genie", [payload, payload], GENIE_CANDIDATES, unavailable={},
                             probe_run_id="p", created_at="2026-01-01T00:00:00Z", payload_format=PAYLOAD_FORMAT)
    assert {m: mapping["metrics"][m]["available"] for m in GENIE_CANDIDATES} == dict.fromkeys(GENIE_CANDIDATES, True)
    metrics = compute_metrics([payload], mapping)
    assert metrics["ttft_ms"].value == pytest.approx(531.665, abs=1e-9)
    assert metrics["ttft_ms"].unit == "ms"
    assert metrics["tps"].value == 38.52525329589844
    assert metrics["prompt_tps"].value == 1547.9876708984375
    assert not metrics["latency_ms"].available  # a Genie profile carries token metrics only


def test_units_are_normalized_and_queries_reduce_to_the_median(tmp_path):
    """A TTFT given in ms is stored in µs; with several queries the summary is the median over them."""
    doc = reference_doc()
    events = doc["components"][0]["events"]
    second = copy.deepcopy(events[1])
    second["time-to-first-token"] = {"value": 600, "unit": "ms"}
    second["token-generation-rate"]["value"] = 40.0
    third = copy.deepcopy(events[1])
    third["time-to-first-token"] = {"value": 0.5, "unit": "s"}
    third["token-generation-rate"]["value"] = 10.0
    events[2:2] = [second, third]
    ev = parse_genie_profile(write(tmp_path, doc))
    assert [q.ttft_us for q in ev.queries] == [531665.0, 600000.0, 500000.0]
    assert (ev.ttft_ms, ev.tps) == (531.665, 38.52525329589844)
    assert [q.event_index for q in ev.queries] == [1, 2, 3]


def _drop(*path):
    def mutate(doc):
        node = doc
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]
    return mutate


def _set(value, *path):
    def mutate(doc):
        node = doc
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return mutate


MALFORMED = [
    (_drop("components", 0, "events", 1, "time-to-first-token"),
     "missing field $.components[0].events[1].time-to-first-token"),
    (_drop("components", 0, "events", 1, "token-generation-rate"),
     "missing field $.components[0].events[1].token-generation-rate"),
    (_drop("components", 0, "events", 1, "prompt-processing-rate", "unit"),
     "missing field $.components[0].events[1].prompt-processing-rate.unit"),
    (_drop("components"), "missing field $.components"),
    (_drop("components", 0, "events"), "missing field $.components[0].events"),
    (_set({"components": 3}, "components", 0), "missing field $.components[0].events"),
    (_set("dialog0", "components"), "$.components: expected a list, got str"),
    (_set("QNN_PROFILE", "header", "artifact_type"), "$.header.artifact_type: 'QNN_PROFILE' is not GENIE_PROFILE"),
    (_set("fast", "components", 0, "events", 1, "time-to-first-token", "value"),
     "$.components[0].events[1].time-to-first-token.value: 'fast' is not a finite number >= 0"),
    (_set(-1, "components", 0, "events", 1, "token-generation-rate", "value"),
     "$.components[0].events[1].token-generation-rate.value: -1 is not a finite number >= 0"),
    (_set("fortnights", "components", 0, "events", 1, "time-to-first-token", "unit"),
     "$.components[0].events[1].time-to-first-token.unit: unknown unit 'fortnights' (expected ns, us, µs, ms, s)"),
    (_set("Hz", "components", 0, "events", 1, "prompt-processing-rate", "unit"),
     "$.components[0].events[1].prompt-processing-rate.unit: unknown unit 'Hz' "
     "(expected toks/sec, toks/s, tok/s, tokens/s, tokens/sec)"),
    (_set(531665, "components", 0, "events", 1, "time-to-first-token"),
     "$.components[0].events[1].time-to-first-token: expected {\"value\", \"unit\"}, got 531665"),
    (_set(823.5, "components", 0, "events", 1, "num-prompt-tokens", "value"),
     "$.components[0].events[1].num-prompt-tokens.value: 823.5 is not a whole number of tokens"),
    (_set("GenieDialog_other", "components", 0, "events", 1, "type"),
     "no GenieDialog_query event in $.components[*].events; profile at least one query with "
     "genie-t2t-run --profile"),
]


@pytest.mark.parametrize(("mutate", "message"), MALFORMED)
def test_malformed_profile_is_refused_naming_the_field(tmp_path, mutate, message):
    """Each malformed profile raises InvalidInput (exit 2): `<file>: <what, at which JSON path>`."""
    doc = reference_doc()
    mutate(doc)
    path = write(tmp_path, doc)
    with pytest.raises(InvalidInput) as info:
        parse_genie_profile(path)
    assert info.value.message == f"{path}: {message}"
    assert info.value.exit_code == ExitCode.INVALID_INPUT
    if not message.endswith("not a whole number of tokens"):
        assert info.value.hint == HINT


def test_not_json_or_not_an_object(tmp_path):
    """Malformed JSON names the line; a JSON list is not a profile; a missing file is named."""
    bad = write(tmp_path, '{"components": [\n  {"events": [}\n]}')
    with pytest.raises(InvalidInput) as info:
        parse_genie_profile(bad)
    assert info.value.message == f"{bad}: line 2, column 15: malformed JSON: Expecting value"
    listed = write(tmp_path, "[]", "list.json")
    with pytest.raises(InvalidInput) as info:
        parse_genie_profile(listed)
    assert info.value.message == f"{listed}: $: expected a JSON object, got list"
    with pytest.raises(InvalidInput) as info:
        parse_genie_profile(tmp_path / "absent.json")
    assert info.value.message == f"{tmp_path / 'absent.json'}: no such file"


def test_optional_fields_may_be_absent(tmp_path):
    """Counts, generation time and duration are optional; the three mapped metrics are not."""
    doc = reference_doc()
    query = doc["components"][0]["events"][1]
    for key in ("num-prompt-tokens", "num-generated-tokens", "token-generation-time", "duration"):
        del query[key]
    del doc["header"]
    [q] = parse_genie_profile(write(tmp_path, doc)).queries
    assert (q.num_prompt_tokens, q.num_generated_tokens, q.token_generation_time_us, q.duration_us) == (None,) * 4
    assert q.ttft_us == 531665.0
