# Shared by the load benchmarks: wrk, release builds, starting a seeded Candor, one wrk run.
# Source it; it sets $work and cleans up on exit.

if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release -q -p candor-cli
cargo build --release -q -p candor-http --example baseline_server

work=$(mktemp -d)
pids=()
# PostgreSQL for the benchmarks that use it; each makes schemas of its own, dropped on exit.
pg=${CANDOR_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
schemas=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  for s in "${schemas[@]}"; do
    psql "$pg" -qc "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# new_schema VAR: sets VAR to a fresh schema name, dropped on exit.
new_schema() {
  printf -v "$1" 'candor_bench_%s_%s' "$1" "$$"
  schemas+=("${!1}")
}

subjects=512
fields='"user.name","user.contact.email","user.contact.address","user.contact.phone_number","user.behavior.purchase_history"'

# start_candor NAME PORT [DATABASE ARGS…]: init and serve a Candor; sets $token to a service key.
# Not for $(…): the server would hold the substitution's pipe open. `serve` also gets the
# arguments in the $serve_extra array.
serve_extra=()
start_candor() {
  local name=$1 port=$2
  shift 2
  ./target/release/candor init --json --dir "$work/$name" "$@" >"$work/$name.json"
  local admin
  admin=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["admin_key"])' "$work/$name.json")
  CANDOR_LOG=warn ./target/release/candor serve --dir "$work/$name" --listen 127.0.0.1:"$port" "$@" "${serve_extra[@]}" >/dev/null &
  pids+=($!)
  until curl -sf localhost:"$port"/healthz >/dev/null; do sleep 0.1; done
  token=$(curl -sf -XPOST localhost:"$port"/v1/keys -H "Authorization: Bearer $admin" \
    -H 'content-type: application/json' \
    -d '{"name":"load","purposes":["essential.service.operations"]}' |
    python3 -c 'import json,sys;print(json.load(sys.stdin)["token"])')
}

# start_follower NAME PORT FROM [SERVE ARGS…]: serve a copy of FROM's home (its keys) as another
# node of FROM's cluster, advertised at its own port.
start_follower() {
  local name=$1 port=$2 from=$3
  shift 3
  cp -r "$work/$from" "$work/$name"
  CANDOR_LOG=warn ./target/release/candor serve --dir "$work/$name" --listen 127.0.0.1:"$port" \
    "$@" --advertise-url "http://127.0.0.1:$port" >/dev/null &
  pids+=($!)
  until curl -sf localhost:"$port"/healthz >/dev/null; do sleep 0.1; done
}

# seed PORT TOKEN: five fields for each of $subjects customers.
seed() {
  seq 0 $((subjects - 1)) | xargs -P 32 -I{} curl -sf -o /dev/null -XPUT \
    "localhost:$1/v1/subjects/cus_{}/data" -H "Authorization: Bearer $2" \
    -H 'content-type: application/json' \
    -d '{"purpose":"essential.service.operations","fields":{"user.name":"Augusta Ada King","user.contact.email":"ada@example.org","user.contact.address":"12 Analytical Row, London","user.contact.phone_number":"+44 20 7946 0000","user.behavior.purchase_history":"2026-11-01 tea set"}}'
}

# run_access PORT TOKEN: POST /v1/access for $secs seconds over $conns connections; prints req/s.
run_access() {
  CANDOR_TOKEN=$2 CANDOR_SUBJECTS=$subjects \
    wrk -t2 -c"$conns" -d"${secs}s" -s bench/access.lua "http://127.0.0.1:$1" |
    tee /dev/stderr | awk '/Requests\/sec/ {print $2}'
}
