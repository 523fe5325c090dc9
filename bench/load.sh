#!/usr/bin/env bash
# Load benchmark over HTTP: Candor's full access path (decision, durable log, unsealing five
# fields) against a baseline axum endpoint returning the same bytes, measured in the same run with
# the same load generator. Prints both throughputs and their ratio.
#
#   bench/load.sh [SECONDS] [CONNECTIONS]
#
# Everything runs on loopback; the load generator shares the machine's cores with the server.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
. bench/common.sh

port_candor=18181
port_base=18182
start_candor home $port_candor
seed $port_candor "$token"

# The baseline answers with the very bytes Candor answers.
curl -sf -XPOST localhost:$port_candor/v1/access -H "Authorization: Bearer $token" \
  -H 'content-type: application/json' \
  -d "{\"subject\":\"cus_1\",\"purpose\":\"essential.service.operations\",\"fields\":[$fields]}" \
  >"$work/body.json"
./target/release/examples/baseline_server 127.0.0.1:$port_base "$work/body.json" &
pids+=($!)
until curl -s -o /dev/null -XPOST localhost:$port_base/v1/access; do sleep 0.1; done

echo "== baseline: static axum endpoint, same bytes" >&2
base=$(run_access $port_base "$token")
echo "== candor: decision + durable log + unseal 5 fields" >&2
full=$(run_access $port_candor "$token")
size=$(curl -sf localhost:$port_candor/healthz | python3 -c 'import json,sys;print(json.load(sys.stdin)["tree_size"])')
python3 - "$base" "$full" "$size" <<'PY'
import sys
base, full, size = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"baseline {base:,.0f} req/s; candor {full:,.0f} req/s; ratio {full / base:.2f}; log size {size:,}")
PY
