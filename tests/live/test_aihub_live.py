"""Live tests against the real Qualcomm AI Hub. Skipped (never xfail) unless QAIHUB_API_TOKEN is set.

The suite's autouse fixture scrubs QAIHUB_API_TOKEN from every test's environment, so the real values
are captured here at import (collection) time and put back only for these tests. Reading the device
list costs nothing; the probe-and-run test spends device minutes (about 9 probe jobs, 1 compile and 2
profiling jobs on one device), so it also needs EDGEGATE_LIVE_DEVICE, the AI Hub device to spend them on:

    QAIHUB_API_TOKEN=... EDGEGATE_LIVE_DEVICE="Samsung Galaxy S24 (Family)" uv run pytest tests/live -m live
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import REPO

LIVE = {name: os.environ.get(name) for name in ("QAIHUB_API_TOKEN", "EDGEGATE_QAIHUB_API_URL", "EDGEGATE_LIVE_DEVICE")}
pytestmark = [pytest.mark.live, pytest.mark.skipif(not LIVE["QAIHUB_API_TOKEN"],
                                                    reason="QAIHUB_API_TOKEN is not set (live AI Hub tests)")]
MODEL = REPO / "examples" / "quickstart" / "model.onnx"


@pytest.fixture
def live(monkeypatch):
    for name in ("QAIHUB_API_TOKEN", "EDGEGATE_QAIHUB_API_URL"):
        if LIVE[name]:
            monkeypatch.setenv(name, LIVE[name])
    monkeypatch.setenv("EDGEGATE_QAIHUB_POLL_S", "10")
    return LIVE


def test_the_device_list_names_snapdragon_devices(live):
    from edgegate_cli.backends.qaihub.backend import QAIHubBackend

    devices = QAIHubBackend().list_devices()
    assert devices and any((d.chipset or "").startswith("qualcomm-") for d in devices)
    assert all(a.count(":") == 1 for d in devices for a in d.attributes)


def test_an_unknown_device_is_refused_with_close_matches(live, invoke, tmp_path):
    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"name: live\nbackend: qaihub\ndevices: ['Samsung Galaxy S2400']\nmodel: {{path: '{MODEL}'}}\n"
                    "gates: [{metric: latency_ms, op: '<=', value: 50}]\n")
    result = invoke("run", pipe, expect=2)
    assert "is not an AI Hub device now" in result.stderr


@pytest.mark.skipif(not LIVE["EDGEGATE_LIVE_DEVICE"], reason="EDGEGATE_LIVE_DEVICE is not set (spends device minutes)")
def test_probe_then_run_on_one_real_device(live, invoke, tmp_path):
    device = live["EDGEGATE_LIVE_DEVICE"]
    report = json.loads(invoke("probe", "--backend", "qaihub", "--device", device, "--json").stdout)
    assert report["capabilities"]["metrics"]["latency_ms"] == "stable"
    assert report["mapping"]["metrics"]["ttft_ms"]["available"] is False
    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"name: live\nbackend: qaihub\ndevices: [{json.dumps(device)}]\nmodel: {{path: '{MODEL}'}}\n"
                    "run_policy: {repeats: 1, timeout_s: 2700}\n"
                    "gates: [{metric: latency_ms, op: '<=', value: 1000}]\n")
    outcome = json.loads(invoke("run", pipe, "--json").stdout)
    assert outcome["verdict"] == "passed"
    assert outcome["devices"][device]["latency_ms"]["samples"] == 50
