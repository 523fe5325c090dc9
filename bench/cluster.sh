#!/usr/bin/env bash
# Access throughput with one Candor node against three nodes sharing one PostgreSQL (one
# sequences the log; the other two hand their writes to it), measured in one run. The same wrk
# load is split evenly over the nodes. Prints both and their ratio.
#
#   bench/cluster.sh [SECONDS] [CONNECTIONS]    (PostgreSQL from $CANDOR_BENCH_POSTGRES,
#                                                default the local server's test database)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-66}
. bench/common.sh
new_schema one
new_schema three

# Each node is a cluster node, so the only difference between the runs is the number of nodes.
db_args() { echo --database "$pg" --db-schema "$1" --db-pool-size 8; }

serve_extra=(--advertise-url http://127.0.0.1:18190)
# shellcheck disable=SC2046
start_candor one 18190 $(db_args "$one")
one_token=$token
serve_extra=(--advertise-url http://127.0.0.1:18191)
# shellcheck disable=SC2046
start_candor a 18191 $(db_args "$three")
three_token=$token
# shellcheck disable=SC2046
start_follower b 18192 a $(db_args "$three")
# shellcheck disable=SC2046
start_follower c 18193 a $(db_args "$three")
seed 18190 "$one_token"
seed 18191 "$three_token"

echo "== one node" >&2
single=$(run_access 18190 "$one_token")

echo "== three nodes, $((conns / 3)) connections each" >&2
all_conns=$conns
conns=$((all_conns / 3))
runs=()
for port in 18191 18192 18193; do
  run_access "$port" "$three_token" >"$work/rate.$port" &
  runs+=($!)
done
wait "${runs[@]}"
python3 - "$single" "$work"/rate.* <<'PY'
import sys
single = float(sys.argv[1])
rates = [float(open(f).read()) for f in sys.argv[2:]]
total = sum(rates)
each = ", ".join(f"{r:,.0f}" for r in rates)
print(f"one node {single:,.0f} req/s; three nodes {total:,.0f} req/s ({each}); three/one {total / single:.2f}")
PY
