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
subjects=512

if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release -q -p candor-cli
cargo build --release -q -p candor-http --example baseline_server

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port_candor=18181
port_base=18182
./target/release/candor init --json --dir "$work/home" >"$work/init.json"
admin=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["admin_key"])' "$work/init.json")
CANDOR_LOG=warn ./target/release/candor serve --dir "$work/home" --listen 127.0.0.1:$port_candor &
pids+=($!)
until curl -sf localhost:$port_candor/healthz >/dev/null; do sleep 0.1; done

token=$(curl -sf -XPOST localhost:$port_candor/v1/keys -H "Authorization: Bearer $admin" \
  -H 'content-type: application/json' \
  -d '{"name":"load","purposes":["essential.service.operations"]}' |
  python3 -c 'import json,sys;print(json.load(sys.stdin)["token"])')

seq 0 $((subjects - 1)) | xargs -P 32 -I{} curl -sf -o /dev/null -XPUT \
  "localhost:$port_candor/v1/subjects/cus_{}/data" -H "Authorization: Bearer $token" \
  -H 'content-type: application/json' \
  -d '{"purpose":"essential.service.operations","fields":{"user.name":"Augusta Ada King","user.contact.email":"ada@example.org","user.contact.address":"12 Analytical Row, London","user.contact.phone_number":"+44 20 7946 0000","user.behavior.purchase_history":"2026-11-01 tea set"}}'

# The baseline answers with the very bytes Candor answers.
curl -sf -XPOST localhost:$port_candor/v1/access -H "Authorization: Bearer $token" \
  -H 'content-type: application/json' \
  -d '{"subject":"cus_1","purpose":"essential.service.operations","fields":["user.name","user.contact.email","user.contact.address","user.contact.phone_number","user.behavior.purchase_history"]}' \
  >"$work/body.json"
./target/release/examples/baseline_server 127.0.0.1:$port_base "$work/body.json" &
pids+=($!)
until curl -s -o /dev/null -XPOST localhost:$port_base/v1/access; do sleep 0.1; done

run() {
  CANDOR_TOKEN=$token CANDOR_SUBJECTS=$subjects \
    wrk -t2 -c"$conns" -d"${secs}s" -s bench/access.lua "http://127.0.0.1:$1" |
    tee /dev/stderr | awk '/Requests\/sec/ {print $2}'
}
echo "== baseline: static axum endpoint, same bytes" >&2
base=$(run $port_base)
echo "== candor: decision + durable log + unseal 5 fields" >&2
full=$(run $port_candor)
size=$(curl -sf localhost:$port_candor/healthz | python3 -c 'import json,sys;print(json.load(sys.stdin)["tree_size"])')
python3 - "$base" "$full" "$size" <<'PY'
import sys
base, full, size = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"baseline {base:,.0f} req/s; candor {full:,.0f} req/s; ratio {full / base:.2f}; log size {size:,}")
PY
