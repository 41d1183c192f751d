# Shared by bench/run.sh and bench/tokens.sh (sourced, not run): errors, memory readings,
# and starting and stopping the release server pinned to its core.
#
# Callers set BIN, SERVER_DIR and PIN_SERVER before starting a server; start_patron sets
# SERVER_PID and ADDR.

die() { echo "bench: $*" >&2; exit 1; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo "?"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo "?"; }
mib() { [[ "$1" =~ ^[0-9]+$ ]] && awk -v k="$1" 'BEGIN {printf "%.1fMiB", k/1024}' || echo "?"; }

# start_patron LOG DATABASE_URL [NAME=VALUE ...]: starts `patron serve` with only the given
# settings (unknown PATRON_* keys are rejected by the server), waits for /readyz.
start_patron() {
  local log="$1" url="$2"
  shift 2
  : >"$log"
  (
    cd "$SERVER_DIR"
    while read -r v; do unset "$v"; done < <(compgen -e | grep '^PATRON_' || true)
    export PATRON_LISTEN=127.0.0.1:0
    export PATRON_DATABASE_URL="$url"
    export PATRON_WORKERS=1
    export PATRON_REGISTRATION__RATE_LIMIT_PER_MINUTE=0
    export RUST_LOG=warn
    for kv in "$@"; do export "${kv?}"; done
    exec "${PIN_SERVER[@]}" "$BIN" serve
  ) >>"$log" 2>&1 &
  SERVER_PID=$!
  ADDR=""
  for _ in $(seq 1 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; die "server exited during start"; }
    ADDR="$(sed -n 's#^patron listening on http://\([^ ]*\) .*#\1#p' "$log" | head -n1)"
    if [[ -n "$ADDR" ]] && curl -fsS -o /dev/null "http://$ADDR/readyz" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  cat "$log" >&2
  die "server not ready after 30s"
}

stop_server() {
  if [[ -n "${SERVER_PID:-}" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
