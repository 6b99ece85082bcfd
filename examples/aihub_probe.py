"""Probe Qualcomm AI Hub with EdgeGate's library and print what it found (see probe_suite_runbook.md).

    export QAIHUB_API_TOKEN=...                  # or `qai-hub configure --api_token ...`
    python examples/aihub_probe.py --dry-run --device "Samsung Galaxy S24 (Family)"    # free: checks and costs
    python examples/aihub_probe.py --device "Samsung Galaxy S24 (Family)" --device "Snapdragon 8 Elite QRD"

`--dry-run` lists the devices it would use (checking the names against AI Hub's live list) and the jobs
the probe would submit, and spends nothing. Without it, it runs the same probe as
`edgegate probe --backend qaihub --device ...` in the given home and prints the mapping and capabilities.
`--api-url` points it elsewhere (e.g. the AI Hub double of the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

JOBS_PER_DEVICE = {"compile": 3, "profile": 3, "inference": 3}  # the three probe models


def dry_run(devices: list[str]) -> None:
    from edgegate_cli.backends.qaihub.backend import QAIHubBackend

    backend = QAIHubBackend()
    backend.check_devices(devices, "--device")
    known = {d.name: d for d in backend.list_devices()}
    print(f"AI Hub at {backend.settings.api_url} (token from {backend.settings.token_source}, SDK "
          f"{backend.sdk_version}); {len(known)} devices listed.")
    for name in devices:
        d = known[name]
        print(f"  {name}: OS {d.os}, {d.chipset}, frameworks {', '.join(d.frameworks)}")
    per = ", ".join(f"{n} {kind}" for kind, n in JOBS_PER_DEVICE.items())
    print(f"The probe would submit {sum(JOBS_PER_DEVICE.values()) * len(devices)} jobs ({per} per device); "
          "compiles run on AI Hub's servers, the profile and inference jobs each hold a device.")


def probe(devices: list[str], home: Path) -> dict:
    from edgegate_cli.backends.base import get_backend
    from edgegate_cli.runs.probe import probe_backend
    from edgegate_cli.store.home import Home
    from edgegate_cli.store.workspace import open_workspace

    ws = open_workspace(Home(home.resolve(), "--home"))
    started = time.monotonic()
    report = probe_backend(ws, "qaihub", lambda text, *_: print(f"  {text}", file=sys.stderr),
                           backend=get_backend("qaihub", ws=ws, devices=devices))
    print(f"Probe {report.probe_run_id} took {time.monotonic() - started:.0f} s; "
          f"{len(report.payload_sha256)} raw payloads stored in {home}/cas.")
    return report.model_dump(mode="json")


def show(report: dict) -> None:
    caps, mapping = report["capabilities"], report["mapping"]
    print("\nMetric mapping (what `edgegate run` will read, and from where):")
    for name, m in mapping["metrics"].items():
        standing = "stable" if m.get("stable") else "unstable" if m["available"] else "unavailable"
        where = (m.get("source") or {}).get("path") or (f"1000 / {m['derive']['from']}" if m.get("derive") else "")
        note = m.get("reason") or (f"needs {m['requires']}" if m.get("requires") else "")
        print(f"  {name:20} {standing:11} {m['unit']:13} {where:48} {note}")
    print("\nModel forms:")
    for form, result in caps["model_forms"].items():
        print(f"  {form:14} {result}")
    print(f"\nJob logs readable: {caps['features']['job_logs']}; token metrics: {caps['features']['token_metrics']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", action="append", required=True, metavar="NAME", help="AI Hub device (repeatable)")
    parser.add_argument("--home", type=Path, default=Path(".edgegate"), help="EdgeGate home (default .edgegate)")
    parser.add_argument("--api-url", help="AI Hub API URL (default: $EDGEGATE_QAIHUB_API_URL, else AI Hub)")
    parser.add_argument("--dry-run", action="store_true", help="check the devices and print the cost; submit nothing")
    parser.add_argument("--json", action="store_true", help="print the probe report as JSON")
    args = parser.parse_args()
    if args.api_url:
        os.environ["EDGEGATE_QAIHUB_API_URL"] = args.api_url
    from edgegate_cli.errors import EdgeGateError

    try:
        if args.dry_run:
            dry_run(args.device)
            return
        report = probe(args.device, args.home)
    except EdgeGateError as err:
        sys.exit(f"{err.code}: {err.message}" + (f" ({err.hint})" if err.hint else ""))
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        show(report)


if __name__ == "__main__":
    main()
