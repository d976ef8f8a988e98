#!/usr/bin/env bash
# make loadtest SCENARIO=loadtest/scenarios/steady.yaml: starts hl7bus
# standalone on a fresh data directory (MLLP in on 2575, delivering to 2576
# where hl7load receives), runs the scenario, writes the JSON report next to
# it under .cache/loadtest, and stops the exchange.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
scenario=${1:?usage: scripts/loadtest.sh SCENARIO.yaml}
out="$top/.cache/loadtest"
mkdir -p "$out"
data=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT INT TERM
"$top/bin/hl7bus" standalone --config "$top/deploy/standalone/hl7bus.yaml" --data-dir "$data" \
  --set log.level=warn ${HL7BUS_PPROF:+--set http.pprof=true} > "$out/hl7bus.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/2575) 2>/dev/null && break; sleep 0.1; done
name=$(basename "$scenario" .yaml)
"$top/bin/hl7load" run --scenario "$scenario" --corpus "$top/loadtest/corpus" --json "$out/$name.json"
echo "report: $out/$name.json"
