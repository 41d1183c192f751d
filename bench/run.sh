#!/usr/bin/env bash
# Patron benchmark scenarios: open registration (private_key_jwt, and client_secret_basic as
# register_secret), metadata, JWKS — on SQLite and PostgreSQL.
#
# Usage: bench/run.sh [sqlite|postgres|all] [duration_secs]   (defaults: all, 10)
#
# The server runs pinned to CPU 0 with one worker thread; wrk runs pinned to CPU 1.
# Environment knobs (all optional):
#   PATRON_BIN     server binary (default: target/release/patron in the repository)
#   BENCH_PG_URL   PostgreSQL admin URL without database (default postgres://postgres@127.0.0.1:5432)
#   BENCH_CONNS    space-separated wrk connection counts (default "16 64")
#   BENCH_OUT      directory for raw wrk output and server logs (default: a new temp dir)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
BACKENDS_ARG="${1:-all}"
DUR="${2:-10}"
BIN="${PATRON_BIN:-$ROOT/target/release/patron}"
PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}"
CONNS="${BENCH_CONNS:-16 64}"
OUT="${BENCH_OUT:-}"
# Keep BENCH_PG_URL etc. out of the PATRON_ namespace: the server rejects unknown PATRON_* keys.
unset PATRON_BIN

source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

case "$BACKENDS_ARG" in
  sqlite) BACKENDS=(sqlite) ;;
  postgres) BACKENDS=(postgres) ;;
  all) BACKENDS=(sqlite postgres) ;;
  *) die "usage: bench/run.sh [sqlite|postgres|all] [duration_secs]" ;;
esac
[[ "$DUR" =~ ^[1-9][0-9]*$ ]] || die "duration must be a positive integer number of seconds (got '$DUR')"

[[ -x "$BIN" ]] || die "release binary not found at $BIN — run \`cargo build --release\` first"
command -v wrk >/dev/null || die "wrk not found — install it (Debian/Ubuntu: apt-get install -y wrk)"
command -v curl >/dev/null || die "curl not found"
command -v python3 >/dev/null || die "python3 not found (used to count SQLite rows)"
for b in "${BACKENDS[@]}"; do
  if [[ $b == postgres ]]; then
    command -v psql >/dev/null || die "psql not found (needed for the postgres backend)"
    psql "$PG_URL/postgres" -XAtqc 'SELECT 1' >/dev/null 2>&1 \
      || die "cannot reach PostgreSQL at $PG_URL (set BENCH_PG_URL)"
  fi
done

NCPU="$(nproc)"
if (( NCPU >= 2 )); then
  PIN_SERVER=(taskset -c 0)
  PIN_WRK=(taskset -c 1)
else
  echo "bench: WARNING: only $NCPU CPU — running without pinning; server and wrk share the core" >&2
  PIN_SERVER=()
  PIN_WRK=()
fi

if [[ -z "$OUT" ]]; then OUT="$(mktemp -d -t patron-bench-out.XXXXXX)"; fi
mkdir -p "$OUT"

# ---------------------------------------------------------------- state for cleanup
SERVER_PID=""
SERVER_DIR=""
PG_DB=""

drop_pg_db() {
  if [[ -n "$PG_DB" ]]; then
    psql "$PG_URL/postgres" -XAtq -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 \
      || echo "bench: WARNING: could not drop database $PG_DB" >&2
    PG_DB=""
  fi
}

cleanup() {
  stop_server
  drop_pg_db
  if [[ -n "$SERVER_DIR" && -d "$SERVER_DIR" ]]; then rm -rf "$SERVER_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers

# start_server BACKEND DATABASE_URL: sets SERVER_PID and ADDR.
# 127.0.0.1 is a trusted proxy: register.lua sends each registration from its own address.
start_server() {
  start_patron "$OUT/server-$1.log" "$2" 'PATRON_REGISTRATION__TRUSTED_PROXIES=["127.0.0.1"]'
}

count_clients() {
  local backend="$1"
  if [[ $backend == sqlite ]]; then
    python3 - "$SERVER_DIR/patron.db" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30)
print(con.execute("SELECT count(*) FROM clients").fetchone()[0])
PY
  else
    psql "$PG_URL/$PG_DB" -XAtq -c 'SELECT count(*) FROM clients'
  fi
}


SUMMARY=()   # rows: scenario backend conns rps p50 p99 non2xx non201 sockerr rows idle_rss

# run_wrk BACKEND SCENARIO CONNS PATH [SCRIPT [SCRIPT_ARG...]]
run_wrk() {
  local backend="$1" scenario="$2" conns="$3" path="$4" script="${5:-}"
  local script_args=("${@:6}")
  local out="$OUT/wrk-$backend-$scenario-c$conns.txt"
  local args=(-t1 "-c$conns" "-d${DUR}s" --latency)
  [[ -n "$script" ]] && args+=(-s "$script")
  echo "--- $backend / $scenario / -c$conns: wrk ${args[*]} http://$ADDR$path ${script_args[*]:+-- ${script_args[*]}}"
  "${PIN_WRK[@]}" wrk "${args[@]}" "http://$ADDR$path" ${script_args[@]:+-- "${script_args[@]}"} | tee "$out"
  LAST_OUT="$out"
}

record() {
  local backend="$1" scenario="$2" conns="$3" file="$4" rows="$5" idle="$6"
  SUMMARY+=("$scenario $backend $conns $(wrk_field "$file" rps) $(wrk_field "$file" p50) \
$(wrk_field "$file" p99) $(wrk_field "$file" non2xx) $(wrk_field "$file" non201) \
$(wrk_field "$file" sockerr) $rows $idle")
}

# ---------------------------------------------------------------- machine facts
{
  echo "=== machine"
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc:   $NCPU"
  echo "cpu:     $(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "kernel:  $(uname -srm)"
  echo "wrk:     $(wrk --version 2>&1 | head -n1 | awk '{print $1, $2}')"
  echo "binary:  $BIN ($(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ))"
  echo "commit:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "pinning: server '${PIN_SERVER[*]:-none}', wrk '${PIN_WRK[*]:-none}'; duration ${DUR}s; conns $CONNS"
  echo "raw output: $OUT"
} | tee "$OUT/machine.txt"

# ---------------------------------------------------------------- scenarios
RSS_AFTER=()
RATIOS=()

for backend in "${BACKENDS[@]}"; do
  echo
  echo "=== backend: $backend"
  SERVER_DIR="$(mktemp -d -t patron-bench-srv.XXXXXX)"
  if [[ $backend == sqlite ]]; then
    url="sqlite://$SERVER_DIR/patron.db"
  else
    PG_DB="patron_bench_$(date +%s)_$RANDOM"
    psql "$PG_URL/postgres" -XAtq -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
    url="$PG_URL/$PG_DB"
  fi

  start_server "$backend" "$url"
  sleep 1   # let start-up work (migrations, key generation) settle before sampling memory
  idle_kib="$(rss_kib "$SERVER_PID")"
  idle="$(mib "$idle_kib")"
  echo "server pid $SERVER_PID on $ADDR; idle RSS $idle"

  for conns in $CONNS; do
    # register: private_key_jwt; register_secret: client_secret_basic (a generated secret).
    for scenario in register register_secret; do
      method=()
      [[ $scenario == register_secret ]] && method=(client_secret_basic)
      before="$(count_clients "$backend")"
      run_wrk "$backend" "$scenario" "$conns" /register "$BENCH_DIR/register.lua" "${method[@]}"
      sleep 1   # requests in flight when wrk stopped may still be committing
      after="$(count_clients "$backend")"
      rows=$((after - before))
      reqs="$(wrk_field "$LAST_OUT" requests)"
      echo "rows committed to clients: $rows (wrk completed $reqs requests, non-201: $(wrk_field "$LAST_OUT" non201))"
      record "$backend" "$scenario" "$conns" "$LAST_OUT" "$rows/$reqs" "$idle"
    done
    ratio="$(awk -v s="$(wrk_field "$OUT/wrk-$backend-register_secret-c$conns.txt" rps)" \
      -v k="$(wrk_field "$OUT/wrk-$backend-register-c$conns.txt" rps)" \
      'BEGIN {if (k + 0 > 0) printf "%.0f%%", 100 * s / k; else print "?"}')"
    RATIOS+=("$backend -c$conns: register_secret / register = $ratio")

    run_wrk "$backend" metadata "$conns" /.well-known/oauth-authorization-server
    record "$backend" metadata "$conns" "$LAST_OUT" "-" "$idle"

    run_wrk "$backend" jwks "$conns" /jwks.json
    record "$backend" jwks "$conns" "$LAST_OUT" "-" "$idle"
  done

  RSS_AFTER+=("$backend idle $idle, after load $(mib "$(rss_kib "$SERVER_PID")"), peak $(mib "$(hwm_kib "$SERVER_PID")"), total clients rows $(count_clients "$backend")")
  kill -0 "$SERVER_PID" 2>/dev/null || die "$backend: server died during the run (see $OUT/server-$backend.log)"
  stop_server
  drop_pg_db
  rm -rf "$SERVER_DIR"
  SERVER_DIR=""
done

# ---------------------------------------------------------------- summary
{
  echo
  echo "=== summary (${DUR}s per run; server: 1 worker on CPU 0; wrk -t1 on CPU 1)"
  printf '%-15s %-9s %5s %11s %9s %9s %8s %8s %7s %15s %9s\n' \
    scenario backend conns req/s p50 p99 non-2xx non-201 sockerr rows/requests idle-RSS
  for row in "${SUMMARY[@]}"; do
    # shellcheck disable=SC2086
    printf '%-15s %-9s %5s %11s %9s %9s %8s %8s %7s %15s %9s\n' $row
  done
  echo
  echo "non-2xx: wrk's 'Non-2xx or 3xx responses' (status >= 400); non-201: counted by register.lua."
  echo "rows/requests: rows added to 'clients' during the run vs responses wrk completed"
  echo "  (rows may exceed 201s by up to the connection count: requests in flight at the end)."
  for line in "${RATIOS[@]}"; do echo "ratio: $line"; done
  for line in "${RSS_AFTER[@]}"; do echo "memory: $line"; done
} | tee "$OUT/summary.txt"
