#!/usr/bin/env bash
# Nightly EdgeGate run on a release box. Safe to start while last night's run is still going:
# `flock -n` makes this one log a line and exit 0 instead of piling up behind it.
#
#   EDGEGATE_PIPELINE  pipeline file (default: examples/quickstart/pipeline.yaml in EDGEGATE_REPO)
#   EDGEGATE_REPO      checkout holding the pipeline (default: the directory above examples/)
#   EDGEGATE_LOG_DIR   where logs, JUnit, summaries and bundles go (default: ~/edgegate-nightly)
#   EDGEGATE_BIN       the edgegate executable (default: edgegate on PATH, e.g. `uv tool install`)
set -uo pipefail

repo="${EDGEGATE_REPO:-$(cd "$(dirname "$0")/../.." && pwd)}"
pipeline="${EDGEGATE_PIPELINE:-$repo/examples/quickstart/pipeline.yaml}"
logs="${EDGEGATE_LOG_DIR:-$HOME/edgegate-nightly}"
edgegate="${EDGEGATE_BIN:-edgegate}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$logs"
log="$logs/nightly-$stamp.log"

say() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >> "$log"; }

exec 9> "$logs/.nightly.lock"
if ! flock -n 9; then
  say "previous nightly run still holds $logs/.nightly.lock; skipping this one"
  exit 0
fi

say "start: $edgegate run $pipeline"
# --wait: if an interactive run holds the EdgeGate home, wait for it instead of failing.
"$edgegate" run "$pipeline" --wait \
  --junit "$logs/junit-$stamp.xml" --summary "$logs/summary-$stamp.md" \
  2>&1 | while IFS= read -r line; do say "$line"; done
rc="${PIPESTATUS[0]}"
case "$rc" in
  0) say "passed (exit 0)";;
  1) say "GATES FAILED (exit 1): see $logs/summary-$stamp.md";;
  2) say "INVALID INPUT (exit 2): fix the pipeline";;
  3) say "RUN ERROR (exit 3): flaky or missing metric, no baseline, device failure or timeout";;
  *) say "INTERNAL ERROR (exit $rc)";;
esac
exit "$rc"
