"""fleet enroll writes a bundle a real agent serves with; fleet health then reaches it over mutual TLS."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from agent.fixtures import free_port


def test_enrolled_bundle_serves_and_is_healthy(invoke, tmp_path):
    invoke("fleet", "ca", "init")
    invoke("keys", "generate")
    port = free_port()
    bundle = tmp_path / "cam-1"
    done = json.loads(invoke("fleet", "enroll", "cam-1", "--url", f"https://127.0.0.1:{port}", "--type",
                             "qcs6490", "--region", "eu", "--tag", "line=3", "--out", bundle, "--json").stdout)
    assert done["cert_sha256"].startswith("sha256:")
    assert oct((bundle / "device.key").stat().st_mode & 0o777) == "0o600"
    config = bundle / "agent.toml"
    config.write_text(config.read_text().replace(f"0.0.0.0:{port}", f"127.0.0.1:{port}"))
    shown = json.loads(invoke("fleet", "show", "cam-1", "--json").stdout)
    assert shown["tags"] == {"line": "3"} and shown["cert_fingerprint"] == done["cert_sha256"]
    again = invoke("fleet", "enroll", "cam-1", "--url", f"https://127.0.0.1:{port}", "--type", "qcs6490",
                   "--out", bundle, expect=2)
    assert "never overwrites" in again.stderr
    log = open(tmp_path / "agent.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "edgegate_cli.cli", "agent", "serve", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, result = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            result = invoke("fleet", "health", "--json", "--timeout", "2", expect=None)
            if result.exit_code == 0:
                break
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "agent.log").read_text()
        assert result is not None and result.exit_code == 0, result.stdout
        assert json.loads(result.stdout)["devices"][0]["health"] == "healthy"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()


def test_enroll_without_ca_or_keys_is_refused(invoke, tmp_path):
    args = ("fleet", "enroll", "d1", "--url", "https://127.0.0.1:8443", "--type", "t", "--out", tmp_path / "b")
    assert "FLEET_CA_MISSING" in invoke(*args, expect=2).stderr
    invoke("fleet", "ca", "init")
    assert "keys generate" in invoke(*args, expect=2).stderr
    assert "DEVICE_NOT_FOUND" in invoke("fleet", "show", "d1", expect=2).stderr
