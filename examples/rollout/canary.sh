#!/bin/sh
# A canary rollout of quickstart@1.1.0 to the EU boards: 10 % first, baked 15 minutes, then the rest.
# Devices come from the fleet registry (`edgegate fleet import examples/rollout/fleet.csv`), the release
# from the registry (`edgegate publish`). `plan` prints the exact stages and devices and changes nothing.
set -e
edgegate rollout plan  quickstart@1.1.0 --strategy canary --canary 10 --target 'region=eu and type~snapdragon-*' \
    --bake 900 --max-bake 3600 --id ro-qs-110-eu
edgegate rollout start quickstart@1.1.0 --strategy canary --canary 10 --target 'region=eu and type~snapdragon-*' \
    --bake 900 --max-bake 3600 --id ro-qs-110-eu
# From here cron drives it (see crontab): push the canary, bake, analyse, push the rest or roll back.
edgegate rollout advance ro-qs-110-eu
edgegate rollout status ro-qs-110-eu
