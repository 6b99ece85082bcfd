"""fleet import / list / show / tag / remove through the CLI, on a real home; bad input names line and field."""

from __future__ import annotations

import json

import pytest

from edgegate_cli.fleet.devices import Device, list_devices
from edgegate_cli.fleet.filters import parse_filter

CSV = ("id,address,type,region,tags\n"
       "a1,https://10.0.0.1:8443,qcs6490,eu,line=1;site=lyon\n"
       "a2,https://10.0.0.2:8443,qcs6490,eu,line=2\n"
       "b1,https://10.0.1.1:8443,qcs8550,us,\n")


def _ids(result) -> list[str]:
    return [d["device_id"] for d in json.loads(result.stdout)["devices"]]


def test_import_is_idempotent_and_list_filters(invoke, tmp_path):
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(CSV)
    assert json.loads(invoke("fleet", "import", fleet, "--json").stdout) == {"added": 3, "changed": 0, "unchanged": 0}
    assert json.loads(invoke("fleet", "import", fleet, "--json").stdout) == {"added": 0, "changed": 0, "unchanged": 3}
    fleet.write_text(CSV.replace("line=2", "line=3"))
    assert json.loads(invoke("fleet", "import", fleet, "--json").stdout) == {"added": 0, "changed": 1, "unchanged": 2}
    assert _ids(invoke("fleet", "list", "--json")) == ["a1", "a2", "b1"]
    assert _ids(invoke("fleet", "list", "--filter", "region=eu and line=3", "--json")) == ["a2"]
    assert _ids(invoke("fleet", "list", "--filter", "type~qcs8* or tag.site=lyon", "--json")) == ["a1", "b1"]
    assert _ids(invoke("fleet", "list", "--filter", "not region in (eu)", "--json")) == ["b1"]


def test_json_import_tag_show_remove(invoke, tmp_path):
    fleet = tmp_path / "fleet.json"
    fleet.write_text(json.dumps([{"id": "d1", "address": "https://127.0.0.1:9443", "type": "t", "tags": {"k": "v"}}]))
    invoke("fleet", "import", fleet)
    invoke("fleet", "tag", "d1", "line=4", "--remove", "k")
    shown = json.loads(invoke("fleet", "show", "d1", "--json").stdout)
    assert shown["tags"] == {"line": "4"} and shown["region"] is None and shown["last_seen"] is None
    invoke("fleet", "remove", "d1")
    assert "DEVICE_NOT_FOUND" in invoke("fleet", "show", "d1", expect=2).stderr


@pytest.mark.parametrize("text, where", [
    ("id,address,type\nx1,https://h:1,t\nx1,https://h:2,t\n", "line 3: duplicate id 'x1'"),
    ("id,address,type\nx1,http://h:1,t\n", "line 2: address"),
    ("id,type\nx1,t\n", "line 1: the header"),
    ("id,address,type,tags\nx1,https://h:1,t,line\n", "line 2: tag"),
    ("id,address,type\nx1,https://h:1\n", "line 2: expected 3 columns"),
])
def test_bad_csv_rows_are_named_by_line_and_nothing_is_written(invoke, tmp_path, text, where):
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(text)
    result = invoke("fleet", "import", fleet, expect=2)
    assert where in result.stderr, result.stderr
    assert _ids(invoke("fleet", "list", "--json")) == []


@pytest.mark.parametrize("doc, where", [
    ({"id": "x"}, "expected a JSON list"),
    ([{"id": "x1", "address": "https://h:1", "type": "t", "colour": "red"}], "[0]: unknown column 'colour'"),
    ([{"id": "x1", "address": "https://h:1", "type": "t"}, 3], "[1] is not an object"),
])
def test_bad_json_rows_are_named_by_index(invoke, tmp_path, doc, where):
    fleet = tmp_path / "fleet.json"
    fleet.write_text(json.dumps(doc))
    assert where in invoke("fleet", "import", fleet, expect=2).stderr


def test_unknown_filter_key_and_filter_matching_nothing(invoke, tmp_path):
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(CSV)
    invoke("fleet", "import", fleet)
    bad = invoke("fleet", "list", "--filter", "region=eu and (", expect=2)
    assert "INVALID_FILTER" in bad.stderr and "position" in bad.stderr
    none = invoke("fleet", "list", "--filter", "region=mars")
    assert "no device matches" in none.stderr
    assert _ids(invoke("fleet", "list", "--filter", "region=mars", "--json")) == []


def test_remove_refused_while_an_unfinished_rollout_targets_the_device(invoke, tmp_path):
    import os

    from edgegate_cli.store.workspace import open_workspace_at

    fleet = tmp_path / "fleet.csv"
    fleet.write_text(CSV)
    invoke("fleet", "import", fleet)
    ws = open_workspace_at(os.environ["EDGEGATE_HOME"])
    db = ws.db
    if "rollout_targets" not in db.table_names():  # the rollout branch's m010 makes it; same columns
        db["rollout_targets"].create({"rollout_id": str, "device_id": str, "state": str},
                                     pk=("rollout_id", "device_id"))
    db["rollouts"].insert({"id": "r1", "release": "m@1.0.0", "status": "running", "created_at": db.now()})
    db["rollout_targets"].insert({"rollout_id": "r1", "device_id": "a1", "state": "pending"})
    refused = invoke("fleet", "remove", "a1", expect=2)
    assert "DEVICE_IN_USE" in refused.stderr and "r1" in refused.stderr
    db["rollouts"].update("r1", {"finished_at": db.now(), "status": "completed"})
    invoke("fleet", "remove", "a1")
    assert [d.device_id for d in list_devices(ws.db)] == ["a2", "b1"]


def test_filter_canonical_form_round_trips():
    device = Device("d", "https://h:1", "qcs6490", "eu", {"line": "3"})
    for text in ("region=eu type=qcs6490", "line=3 and not (id=x or release=m@1)", "all", "type~qcs*"):
        f = parse_filter(text)
        assert str(parse_filter(str(f))) == str(f)
        assert f.matches(device)
