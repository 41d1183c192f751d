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

# Fields pulled from wrk's text output (and the lines bench/*.lua print): wrk_field FILE
# WHAT prints the value, or "?" when the output has none.
wrk_field() {
  local v
  v="$(wrk_field_raw "$@")"
  echo "${v:-?}"
}
wrk_field_raw() {
  local file="$1" what="$2"
  case "$what" in
    rps) awk '/^Requests\/sec:/ {print $2}' "$file" ;;
    requests) awk '/ requests in / {print $1; exit}' "$file" ;;
    p50) awk '/Latency Distribution/ {f=1; next} f && $1 == "50%" {print $2; exit}' "$file" ;;
    p99) awk '/Latency Distribution/ {f=1; next} f && $1 == "99%" {print $2; exit}' "$file" ;;
    non2xx) awk -F': *' '/^ *Non-2xx or 3xx responses:/ {n=$2} END {print n+0}' "$file" ;;
    non201) awk -F': *' '/^Non-201 responses:/ {n=$2} END {print (n == "" ? "-" : n+0)}' "$file" ;;
    non200) awk -F': *' '/^Non-200 responses:/ {n=$2} END {print (n == "" ? "-" : n+0)}' "$file" ;;
    sockerr) awk '/Socket errors:/ {gsub(",", ""); print $4+$6+$8+$10; f=1} END {if (!f) print 0}' "$file" ;;
    used) awk -F': *' '/^Fixture lines used:/ {print $2+0}' "$file" ;;
    exhausted) awk '/^Fixtures exhausted: yes/ {f=1} END {print (f ? "EXHAUSTED" : "ok")}' "$file" ;;
  esac
}
