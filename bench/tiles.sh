#!/usr/bin/env bash
# Tile serving over HTTP: GETs of full C2SP hash tiles from Candor (from SQLite on first request,
# then from memory) against a baseline axum server answering with the same 8 KiB, in the same run with the
# same load generator. Prints both throughputs and their ratio.
#
#   bench/tiles.sh [SECONDS] [CONNECTIONS]
#
# Everything runs on loopback; the load generator shares the machine's cores with the server.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}

. bench/common.sh

port_candor=18183
port_base=18184
start_candor home $port_candor

# Grow the log: new customers as fast as the server takes them.
CANDOR_TOKEN=$token wrk -t2 -c64 -d"${secs}s" -s bench/collect.lua "http://127.0.0.1:$port_candor" >/dev/null
size=$(curl -sf localhost:$port_candor/healthz | python3 -c 'import json,sys;print(json.load(sys.stdin)["tree_size"])')
tiles=$((size / 256))

curl -sf localhost:$port_candor/log/tile/0/000 >"$work/tile"
./target/release/examples/baseline_server 127.0.0.1:$port_base "$work/tile" application/octet-stream &
pids+=($!)
until curl -s -o /dev/null localhost:$port_base/; do sleep 0.1; done

run() {
  CANDOR_TILES=$tiles wrk -t2 -c"$conns" -d"${secs}s" -s bench/tiles.lua "http://127.0.0.1:$1" |
    tee /dev/stderr | awk '/Requests\/sec/ {print $2}'
}
echo "== baseline: static axum endpoint, the same 8 KiB" >&2
base=$(run $port_base)
echo "== candor: full level-0 tiles, cycling over $tiles of them" >&2
full=$(run $port_candor)
python3 - "$base" "$full" "$size" <<'PY'
import sys
base, full, size = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"baseline {base:,.0f} req/s; candor tiles {full:,.0f} req/s; ratio {full / base:.2f}; log size {size:,}")
PY
