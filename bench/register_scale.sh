#!/usr/bin/env bash
# Registration as agents accumulate: the open-registration rate into an empty database,
# then into the same database once it holds N more agents (default 1,000,000, inserted
# directly, as earlier registrations would have left them), in one run.
#
# Usage: bench/register_scale.sh [agents] [duration_secs] [sqlite|postgres]
#        (defaults: 1000000, 8, sqlite; PostgreSQL at BENCH_PG_URL, default
#        postgres://postgres@127.0.0.1:5432, in a database of its own, dropped afterwards)
#
# Server pinned to CPU 0 with one worker, wrk on CPU 1, as in bench/run.sh. Needs wrk,
# python3 (sqlite3 module) or psql, and a release build (PATRON_BIN, default
# target/release/patron).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
AGENTS="${1:-1000000}"
DUR="${2:-8}"
BACKEND="${3:-sqlite}"
PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}"
BIN="${PATRON_BIN:-$ROOT/target/release/patron}"
unset PATRON_BIN
source "$BENCH_DIR/lib.sh"
[[ -x "$BIN" ]] || die "no server binary at $BIN (cargo build --release)"
command -v wrk >/dev/null || die "wrk is required (apt-get install wrk)"
PIN_SERVER=(taskset -c 0)
PIN_WRK=(taskset -c 1)

SERVER_DIR="$(mktemp -d /tmp/patron-bench-scale.XXXXXX)"
OUT="$SERVER_DIR"
DB="$SERVER_DIR/patron.db"
PG_DB="patron_bench_scale_$$"
case "$BACKEND" in
  sqlite) DB_URL="sqlite://$DB" ;;
  postgres)
    psql "$PG_URL/postgres" -XAtq -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
    DB_URL="$PG_URL/$PG_DB"
    ;;
  *) die "backend must be sqlite or postgres" ;;
esac
cleanup() {
  stop_server
  rm -rf "$SERVER_DIR"
  if [[ "$BACKEND" == postgres ]]; then
    psql "$PG_URL/postgres" -XAtq -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

measure() {
  start_patron "$OUT/server.log" "$DB_URL" 'PATRON_REGISTRATION__TRUSTED_PROXIES=["127.0.0.1"]'
  "${PIN_WRK[@]}" wrk -t1 -c16 "-d${DUR}s" --latency -s "$BENCH_DIR/register.lua" \
    "http://$ADDR/register" >"$OUT/wrk-$1.txt"
  stop_server
  wrk_field "$OUT/wrk-$1.txt" rps
}

echo "=== register_scale: $BACKEND, $AGENTS agents, ${DUR}s per run, -c16"
empty="$(measure empty)"
echo "empty database: $empty req/s"

echo "--- inserting $AGENTS agents"
if [[ "$BACKEND" == postgres ]]; then
  psql "$DB_URL" -XAtq <<SQL
INSERT INTO clients (client_id, status, owner_id, metadata, client_secret_hash,
  registration_token_hash, user_code, source_addr, created_at, updated_at, expires_at,
  tokens_revoked_before)
SELECT 'agt_' || substr(md5(random()::text), 1, 22), 'active', NULL,
  '{"client_name":"earlier agent","grant_types":["client_credentials"],"response_types":[],"token_endpoint_auth_method":"private_key_jwt"}',
  NULL, md5(random()::text) || md5(random()::text), NULL, '2001:db8::' || to_hex(g),
  extract(epoch from now())::bigint, extract(epoch from now())::bigint, NULL, NULL
FROM generate_series(1, $AGENTS) AS g;
SELECT count(*) || ' clients stored' FROM clients;
SQL
else
python3 - "$DB" "$AGENTS" <<'PY'
import os, secrets, sqlite3, sys, time
db, n = sys.argv[1], int(sys.argv[2])
con = sqlite3.connect(db, timeout=60)
now = int(time.time())
meta = '{"client_name":"earlier agent","grant_types":["client_credentials"],"response_types":[],"token_endpoint_auth_method":"private_key_jwt"}'
batch = 50_000
for start in range(0, n, batch):
    rows = [
        ("agt_" + secrets.token_urlsafe(16), "active", None, meta, None, secrets.token_hex(32),
         None, "2001:db8::%x" % (start + i), now, now, None, None)
        for i in range(min(batch, n - start))
    ]
    con.executemany(
        "INSERT INTO clients (client_id, status, owner_id, metadata, client_secret_hash,"
        " registration_token_hash, user_code, source_addr, created_at, updated_at, expires_at,"
        " tokens_revoked_before) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    con.commit()
print(con.execute("SELECT count(*) FROM clients").fetchone()[0], "clients stored")
PY
fi

full="$(measure full)"
echo "with $AGENTS more agents: $full req/s"
awk -v e="$empty" -v f="$full" 'BEGIN { printf "ratio: %.0f%% of the empty-database rate\n", 100 * f / e }'
