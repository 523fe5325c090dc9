#!/usr/bin/env bash
# How long writes stall when the sequencer dies: three nodes on one PostgreSQL, the sequencer
# killed with SIGKILL, and the time until a write through a follower is acknowledged (it waits
# for a follower to take the lease over, then is handed to it). Measured, never asserted.
#
#   bench/takeover.sh [LEASE_MS]    (PostgreSQL from $CANDOR_BENCH_POSTGRES, default the local
#                                    server's test database)
set -euo pipefail
cd "$(dirname "$0")/.."
lease=${1:-3000}
. bench/common.sh
new_schema schema
db=(--database "$pg" --db-schema "$schema" --db-pool-size 4 --sequencer-lease-ms "$lease")

serve_extra=(--advertise-url http://127.0.0.1:18301)
start_candor a 18301 "${db[@]}"
sequencer=${pids[-1]}
start_follower b 18302 a "${db[@]}"
start_follower c 18303 a "${db[@]}"

put() {
  curl -s -o /dev/null -w '%{http_code}' -XPUT "localhost:18302/v1/subjects/$1/data" \
    -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"purpose":"essential.service.operations","fields":{"user.name":"x"}}'
}
[ "$(put before)" = 200 ]
start=$(date +%s.%N)
kill -9 "$sequencer"
code=$(put after)
end=$(date +%s.%N)
python3 -c "print(f'lease {$lease} ms: the first write through a follower after SIGKILL of the sequencer answered $code after {$end - $start:.2f} s')"
