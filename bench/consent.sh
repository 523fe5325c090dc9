#!/usr/bin/env bash
# Load benchmark of reads that rest on consent: POST /v1/access for an email-marketing purpose
# each seeded customer granted, so every read is decided on their consent and committed only if
# that consent is still the one in force at its position in the log (the stale-consent check).
# Against the same baseline as load.sh, in the same run; prints both and their ratio.
#
#   bench/consent.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
. bench/common.sh

purpose=marketing.communications.email
port_candor=18183
port_base=18184
start_candor home $port_candor
admin=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["admin_key"])' "$work/home.json")
token=$(curl -sf -XPOST localhost:$port_candor/v1/keys -H "Authorization: Bearer $admin" \
  -H 'content-type: application/json' \
  -d "{\"name\":\"mailer\",\"purposes\":[\"essential.service.operations\",\"$purpose\"]}" |
  python3 -c 'import json,sys;print(json.load(sys.stdin)["token"])')
seed $port_candor "$token"
seq 0 $((subjects - 1)) | xargs -P 32 -I{} curl -sf -o /dev/null -XPOST \
  "localhost:$port_candor/v1/subjects/cus_{}/consents" -H "Authorization: Bearer $token" \
  -H 'content-type: application/json' \
  -d "{\"changes\":[{\"purpose\":\"$purpose\",\"action\":\"grant\",\"evidence\":{\"channel\":\"newsletter_form\",\"notice_version\":\"2026-11\"}}]}"

export CANDOR_PURPOSE=$purpose CANDOR_FIELDS='["user.contact.email"]'
curl -sf -XPOST localhost:$port_candor/v1/access -H "Authorization: Bearer $token" \
  -H 'content-type: application/json' \
  -d "{\"subject\":\"cus_1\",\"purpose\":\"$purpose\",\"fields\":$CANDOR_FIELDS}" \
  >"$work/body.json"
grep -q '"allowed":true' "$work/body.json" || { cat "$work/body.json" >&2; exit 1; }
./target/release/examples/baseline_server 127.0.0.1:$port_base "$work/body.json" &
pids+=($!)
until curl -s -o /dev/null -XPOST localhost:$port_base/v1/access; do sleep 0.1; done

echo "== baseline: static axum endpoint, same bytes" >&2
base=$(run_access $port_base "$token")
echo "== candor: a read that rests on consent, decided and logged on it" >&2
full=$(run_access $port_candor "$token")
python3 - "$base" "$full" <<'PY'
import sys
base, full = float(sys.argv[1]), float(sys.argv[2])
print(f"baseline {base:,.0f} req/s; candor {full:,.0f} req/s; ratio {full / base:.2f}")
PY
