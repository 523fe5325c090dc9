#!/usr/bin/env bash
# Access throughput on PostgreSQL against embedded SQLite: the same seeded Candor on each, the
# same wrk load one after the other, in one run. Prints both and their ratio.
#
#   bench/backends.sh [SECONDS] [CONNECTIONS]    (PostgreSQL from $CANDOR_BENCH_POSTGRES,
#                                                 default the local server's test database)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
. bench/common.sh
new_schema schema

start_candor sqlite 18185
sqlite_token=$token
start_candor postgres 18186 --database "$pg" --db-schema "$schema"
pg_token=$token
seed 18185 "$sqlite_token"
seed 18186 "$pg_token"

echo "== candor on embedded SQLite" >&2
lite=$(run_access 18185 "$sqlite_token")
echo "== candor on PostgreSQL" >&2
post=$(run_access 18186 "$pg_token")
python3 - "$lite" "$post" <<'PY'
import sys
lite, post = float(sys.argv[1]), float(sys.argv[2])
print(f"sqlite {lite:,.0f} req/s; postgres {post:,.0f} req/s; postgres/sqlite {post / lite:.2f}")
PY
