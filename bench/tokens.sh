#!/usr/bin/env bash
# Patron token-endpoint benchmarks on SQLite: private_key_jwt + DPoP grant, DPoP token
# exchange, client_secret_basic grant (right and wrong secret), introspection, the
# authorization_code exchange and the refresh_token grant of a public client; plus
# `openssl speed ecdsap256` for the crypto-bound ceiling.
#
# Usage: bench/tokens.sh [duration_secs]   (default 10; at most 45 — fixtures expire 60 s
#                                            after they are generated)
#
# The server runs pinned to CPU 0 with one worker thread; wrk runs pinned to CPU 1 (as in
# bench/run.sh). Environment knobs (all optional):
#   PATRON_BIN          server binary (default: target/release/patron in the repository)
#   BENCH_CONNS         space-separated wrk connection counts (default "16 64")
#   BENCH_OUT           directory for raw wrk output, server log and summary (default: a new temp dir)
#   BENCH_FIXTURE_RATE  fixture lines generated per second of run (default 8000)
#   BENCH_FIXTURE_GEN   python (default: bench/fixtures.py, from one CLI sample line) or cli
#                       (`patron agent bench-fixtures` for every line; ~700 lines/s per process)
#   BENCH_FIXTURE_JOBS  parallel fixture generators (default: nproc; the server is idle then)
#   BENCH_PACED_RATE    after the saturating runs, the grant and the exchange once more at
#                       this offered rate (requests/s in total) over BENCH_PACED_CONNS
#                       connections (default 4200 over 64; 0 skips): latency of a loaded
#                       server that is not saturated
#   BENCH_REDIS_URL     when set, the server keeps single-use jtis in this Redis
#                       (redis.url, as several replicas would); in memory otherwise
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
DUR="${1:-10}"
BIN="${PATRON_BIN:-$ROOT/target/release/patron}"
CONNS="${BENCH_CONNS:-16 64}"
OUT="${BENCH_OUT:-}"
FIXTURE_RATE="${BENCH_FIXTURE_RATE:-8000}"
FIXTURE_JOBS="${BENCH_FIXTURE_JOBS:-$(nproc)}"
FIXTURE_GEN="${BENCH_FIXTURE_GEN:-python}"
PACED_RATE="${BENCH_PACED_RATE:-4200}"
PACED_CONNS="${BENCH_PACED_CONNS:-64}"
unset PATRON_BIN

source "$BENCH_DIR/lib.sh"

[[ "$DUR" =~ ^[1-9][0-9]*$ ]] || die "usage: bench/tokens.sh [duration_secs] (got '$DUR')"
(( DUR <= 45 )) || die "duration must be at most 45 s: fixtures expire 60 s after generation"
[[ "$FIXTURE_RATE" =~ ^[1-9][0-9]*$ ]] || die "BENCH_FIXTURE_RATE must be a positive integer"
[[ "$FIXTURE_JOBS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_FIXTURE_JOBS must be a positive integer"
[[ "$PACED_RATE" =~ ^[0-9]+$ ]] || die "BENCH_PACED_RATE must be a non-negative integer"
[[ "$PACED_CONNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_PACED_CONNS must be a positive integer"
case "$FIXTURE_GEN" in
  python) python3 -c 'import cryptography' 2>/dev/null \
    || die "bench/fixtures.py needs python3 with the 'cryptography' package (or set BENCH_FIXTURE_GEN=cli)" ;;
  cli) ;;
  *) die "BENCH_FIXTURE_GEN must be python or cli" ;;
esac
[[ -x "$BIN" ]] || die "release binary not found at $BIN — run \`cargo build --release\` first"
for c in wrk curl jq openssl base64; do
  command -v "$c" >/dev/null || die "$c not found"
done

NCPU="$(nproc)"
if (( NCPU >= 2 )); then
  PIN_SERVER=(taskset -c 0)
  PIN_WRK=(taskset -c 1)
  PIN_OTHER=(taskset -c 1)   # setup CLI calls: off the server core
else
  echo "bench: WARNING: only $NCPU CPU — running without pinning; server and wrk share the core" >&2
  PIN_SERVER=()
  PIN_WRK=()
  PIN_OTHER=()
fi

if [[ -z "$OUT" ]]; then OUT="$(mktemp -d -t patron-bench-out.XXXXXX)"; fi
mkdir -p "$OUT"

# ---------------------------------------------------------------- state for cleanup
SERVER_PID=""
SERVER_DIR=""   # server working dir: database, patron.kek
WORK_DIR=""     # agent file, fixtures (large; never kept)

cleanup() {
  stop_server
  if [[ -n "$SERVER_DIR" && -d "$SERVER_DIR" ]]; then rm -rf "$SERVER_DIR"; fi
  if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then rm -rf "$WORK_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers
now_ms() { date +%s%3N; }

ADMIN_TOKEN="$(openssl rand -hex 24)"   # 48 chars; enables the admin API for this run only

REDIS_URL="${BENCH_REDIS_URL:-}"
start_server() {
  local extra=()
  [[ -n "$REDIS_URL" ]] && extra+=("PATRON_REDIS__URL=$REDIS_URL" "PATRON_REDIS__PREFIX=bench-$$:")
  # The failed-authentication throttle is off here: secret_bad measures what a wrong secret
  # costs once checked (with the throttle on, a flood is answered 429 before any check, and
  # the flood's address is refused for the scenarios after it).
  extra+=("PATRON_LIMITS__CLIENT_AUTH_FAILURES_PER_MINUTE=0" "PATRON_LIMITS__ADDRESS_AUTH_FAILURES_PER_MINUTE=0")
  start_patron "$OUT/server-tokens.log" "sqlite://$SERVER_DIR/patron.db" "PATRON_ADMIN_TOKEN=$ADMIN_TOKEN" "${extra[@]}"
}

# The CLI as a client of this server (admin and agent commands read these two variables).
cli() {
  (
    while read -r v; do unset "$v"; done < <(compgen -e | grep '^PATRON_' || true)
    export PATRON_SERVER="http://$ADDR" PATRON_ADMIN_TOKEN="$ADMIN_TOKEN" RUST_LOG=warn
    "${PIN_OTHER[@]}" "$BIN" "$@"
  )
}

cli_unpinned() {
  local PIN_OTHER=()
  cli "$@"
}

uri() { jq -rn --arg v "$1" '$v | @uri'; }

# Other CPU-heavy processes (compilers, test runs) distort the figures: note them per run.
other_load() {
  local p
  p="$(pgrep -x 'cargo|rustc|cc1|cc1plus|ld|ld\.lld|mold|rust-lld' 2>/dev/null | wc -l || true)"
  echo "${p:-0}"
}

# CPU time spent by anything but the server and wrk during a run (interference), from the
# aggregate "cpu" line of /proc/stat (user+nice+system+steal; irq/softirq are left out:
# loopback networking lands there), the server's utime+stime and wrk's user+sys.
CLK_TCK="$(getconf CLK_TCK)"
cpu_busy() { awk '$1 == "cpu" {print $2+$3+$4+$9; exit}' /proc/stat; }
cpu_total() { awk '$1 == "cpu" {s=0; for (i=2; i<=9; i++) s+=$i; print s; exit}' /proc/stat; }
server_cpu() { awk '{print $14+$15}' "/proc/$SERVER_PID/stat" 2>/dev/null || echo 0; }


# gen_fixtures COUNT FILE: fresh single-use assertion/proof pairs; sets GEN_SECS.
# `patron agent bench-fixtures` writes one line per ~1.4 ms, too slow for tens of thousands
# of lines within their 60 s lifetime, so by default the CLI writes one sample line and
# bench/fixtures.py writes COUNT more in the same format, using both cores (the server is
# idle meanwhile). BENCH_FIXTURE_GEN=cli uses the CLI for all lines (FIXTURE_JOBS processes).
# Every line's clock starts when generation starts: the assertion expires 60 s later, so
# generation plus the run must stay under that.
gen_fixtures() {
  local count="$1" file="$2" t0 t1 jobs="$FIXTURE_JOBS" i n pids=()
  (( jobs > count )) && jobs="$count"
  rm -f "$file" "$file".part* "$file.sample"
  t0="$(now_ms)"
  if [[ $FIXTURE_GEN == python ]]; then
    cli agent bench-fixtures --file "$WORK_DIR/agent.json" --count 1 --out "$file.sample"
    python3 "$BENCH_DIR/fixtures.py" --agent "$WORK_DIR/agent.json" --sample "$file.sample" \
      --count "$count" --out "$file" --jobs "$jobs"
    rm -f "$file.sample"
  else
    for (( i = 0; i < jobs; i++ )); do
      n=$(( count / jobs + (i < count % jobs ? 1 : 0) ))
      cli_unpinned agent bench-fixtures --file "$WORK_DIR/agent.json" --count "$n" --out "$file.part$i" &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || die "bench-fixtures failed"; done
    for (( i = 0; i < jobs; i++ )); do cat "$file.part$i"; done >"$file"
    rm -f "$file".part*
  fi
  t1="$(now_ms)"
  GEN_SECS="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b-a)/1000}')"
  n="$(wc -l <"$file")"
  [[ "$n" == "$count" ]] || die "fixture generation wrote $n lines, expected $count"
  echo "generated $count fixture lines ($FIXTURE_GEN, $jobs job(s)) in ${GEN_SECS}s ($(du -h "$file" | cut -f1))"
  if awk -v g="$GEN_SECS" -v d="$DUR" 'BEGIN {exit !(g + d > 50)}'; then
    echo "bench: WARNING: generation (${GEN_SECS}s) + run (${DUR}s) > 50 s: fixtures may expire during the run (see non-200)" >&2
  fi
}

# One agent token (DPoP-bound to the agent's key), the subject of the exchanges.
agent_token() {
  cli agent token --file "$WORK_DIR/agent.json" | jq -er .access_token
}

# A skill token of the secret client, the token the introspection scenario asks about.
secret_skill_token() {
  curl -fsS -X POST "http://$ADDR/token" -H "Authorization: $SECRET_AUTH" \
    -H 'content-type: application/x-www-form-urlencoded' \
    --data "grant_type=client_credentials&resource=$RESOURCE_ENC" | jq -er .access_token
}

SUMMARY=()   # rows: scenario conns rps p50 p99 non200 sockerr fixtures gen_secs srv_cpu other_cpu heavy_procs

# run_scenario NAME CONNS PATH BODY AUTH FIXTURES [RATE]
# With RATE, token.lua paces the connections to about RATE requests/s in total.
run_scenario() {
  local name="$1" conns="$2" path="$3" body="$4" auth="$5" fixtures="$6" rate="${7:-}"
  local out="$OUT/wrk-tokens-$name-c$conns.txt"
  local args=(-t1 "-c$conns" "-d${DUR}s" --latency -s "$BENCH_DIR/token.lua")
  local load_before load_after b0 t0 s0 b1 t1 s1 wrk_cpu
  load_before="$(other_load)"
  echo "--- $name / -c$conns: wrk ${args[*]} http://$ADDR$path${fixtures:+ -- $(basename "$fixtures")}"
  b0="$(cpu_busy)"; t0="$(cpu_total)"; s0="$(server_cpu)"
  {
    TIMEFORMAT='%3U %3S'
    time TOKEN_BODY="$body" TOKEN_AUTHORIZATION="$auth" TOKEN_FIXTURES="" \
      TOKEN_RATE="$rate" TOKEN_CONNS="$conns" \
      "${PIN_WRK[@]}" wrk "${args[@]}" "http://$ADDR$path" ${fixtures:+-- "$fixtures"} >"$out" 2>&1
  } 2>"$out.cpu"
  b1="$(cpu_busy)"; t1="$(cpu_total)"; s1="$(server_cpu)"
  load_after="$(other_load)"
  cat "$out"
  wrk_cpu="$(awk -v hz="$CLK_TCK" '{printf "%d", ($1 + $2) * hz}' "$out.cpu")"
  rm -f "$out.cpu"
  local other_cpu srv_cpu
  srv_cpu="$(awk -v s="$((s1 - s0))" -v t="$((t1 - t0))" -v n="$NCPU" \
    'BEGIN {printf "%.0f%%", (t > 0 ? 100 * n * s / t : 0)}')"
  other_cpu="$(awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" -v s="$((s1 - s0))" -v w="$wrk_cpu" -v n="$NCPU" \
    'BEGIN {o = (t > 0 ? 100 * n * (b - s - w) / t : 0); if (o < 0) o = 0; printf "%.0f%%", o}')"
  local others=$(( load_before > load_after ? load_before : load_after ))
  echo "server CPU: ${srv_cpu} of its core; other CPU during the run: ${other_cpu} of one core (neither server nor wrk); compiler processes seen: $others"
  local fx="-" gen="-"
  if [[ -n "$fixtures" ]]; then
    fx="$(wrk_field "$out" used)/$(wc -l <"$fixtures")/$(wrk_field "$out" exhausted)"
    gen="${GEN_SECS}s"
    rm -f "$fixtures"
  fi
  SUMMARY+=("$name $conns $(wrk_field "$out" rps) $(wrk_field "$out" p50) $(wrk_field "$out" p99) \
$(wrk_field "$out" non200) $(wrk_field "$out" sockerr) $fx $gen $srv_cpu $other_cpu $others")
}

# ---------------------------------------------------------------- machine facts
{
  echo "=== machine"
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc:   $NCPU"
  echo "cpu:     $(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "kernel:  $(uname -srm)"
  echo "wrk:     $(wrk --version 2>&1 | head -n1 | awk '{print $1, $2}')"
  echo "openssl: $(openssl version)"
  echo "binary:  $BIN ($(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ))"
  echo "commit:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "pinning: server '${PIN_SERVER[*]:-none}', wrk '${PIN_WRK[*]:-none}'; duration ${DUR}s; conns $CONNS"
  echo "replay:  ${REDIS_URL:-in memory}"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min); other heavy processes: $(other_load)"
  echo "raw output: $OUT"
} | tee "$OUT/machine-tokens.txt"
if (( $(other_load) > 0 )); then
  echo "bench: WARNING: compiler processes are running (cargo/rustc/...): the figures will not be clean" >&2
fi

# ---------------------------------------------------------------- setup
SERVER_DIR="$(mktemp -d -t patron-bench-srv.XXXXXX)"
WORK_DIR="$(mktemp -d -t patron-bench-fx.XXXXXX)"
start_server
sleep 1
idle="$(mib "$(rss_kib "$SERVER_PID")")"
echo "server pid $SERVER_PID on $ADDR; idle RSS $idle"

RESOURCE="https://bench.example/api"
RESOURCE_ENC="$(uri "$RESOURCE")"
ASSERTION_TYPE_ENC="$(uri urn:ietf:params:oauth:client-assertion-type:jwt-bearer)"

echo "=== setup: agent, skill, approvals, secret client"
cli agent register --name bench --file "$WORK_DIR/agent.json" >/dev/null
AGENT_ID="$(jq -er .client_id "$WORK_DIR/agent.json")"
cli admin skill add --audience "$RESOURCE" --name Bench --scopes "read write" --ttl 300 --grantable-by any >/dev/null
cli admin agent approve "$AGENT_ID" --owner github:1 --grant "$RESOURCE=read,write" >/dev/null
echo "agent $AGENT_ID approved"

reg="$(curl -fsS -X POST "http://$ADDR/register" -H 'content-type: application/json' \
  -d '{"client_name":"secret bench","grant_types":["client_credentials"],"response_types":[],"token_endpoint_auth_method":"client_secret_basic"}')"
SECRET_ID="$(jq -er .client_id <<<"$reg")"
SECRET_SECRET="$(jq -er .client_secret <<<"$reg")"
cli admin agent approve "$SECRET_ID" --owner github:1 --grant "$RESOURCE=read,write" >/dev/null
# RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
SECRET_AUTH="Basic $(printf '%s:%s' "$(uri "$SECRET_ID")" "$(uri "$SECRET_SECRET")" | base64 -w0)"
echo "secret client $SECRET_ID approved"

# A public code-flow client (token_endpoint_auth_method none), claimed by the same owner.
# Its codes and refresh tokens are single use: bench/code_fixtures.py writes them into the
# database before each run (the consent page is not what is measured here).
CODE_REDIRECT="http://127.0.0.1/callback"
reg="$(curl -fsS -X POST "http://$ADDR/register" -H 'content-type: application/json' \
  -d "{\"client_name\":\"code bench\",\"redirect_uris\":[\"$CODE_REDIRECT\"],\"grant_types\":[\"authorization_code\",\"refresh_token\"],\"response_types\":[\"code\"],\"token_endpoint_auth_method\":\"none\"}")"
CODE_ID="$(jq -er .client_id <<<"$reg")"
cli admin agent approve "$CODE_ID" --owner github:1 --grant "$RESOURCE=read,write" >/dev/null
CODE_VERIFIER="$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')"
code_fixtures() {   # code_fixtures KIND COUNT FILE
  local t0 t1
  t0="$(now_ms)"
  python3 "$BENCH_DIR/code_fixtures.py" --db "$SERVER_DIR/patron.db" --client-id "$CODE_ID" \
    --owner github:1 --resource "$RESOURCE" --scopes "read write" --redirect-uri "$CODE_REDIRECT" \
    --verifier "$CODE_VERIFIER" --kind "$1" --count "$2" --out "$3"
  t1="$(now_ms)"
  GEN_SECS="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b-a)/1000}')"
}
CODE_BODY="grant_type=authorization_code&code={A}&redirect_uri=$(uri "$CODE_REDIRECT")&code_verifier=$CODE_VERIFIER&client_id=$CODE_ID"
REFRESH_BODY="grant_type=refresh_token&refresh_token={A}&client_id=$CODE_ID"
echo "code-flow client $CODE_ID approved"

GRANT_BODY="grant_type=client_credentials&resource=$RESOURCE_ENC&client_assertion_type=$ASSERTION_TYPE_ENC&client_assertion={A}"
exchange_body() {
  echo "grant_type=$(uri urn:ietf:params:oauth:grant-type:token-exchange)&subject_token=$(uri "$1")&subject_token_type=$(uri urn:ietf:params:oauth:token-type:access_token)&resource=$RESOURCE_ENC&client_assertion_type=$ASSERTION_TYPE_ENC&client_assertion={A}"
}
SECRET_BODY="grant_type=client_credentials&resource=$RESOURCE_ENC"
# The same client with a wrong secret of the right shape: every request is refused (401).
WRONG_AUTH="Basic $(printf '%s:%s' "$(uri "$SECRET_ID")" "patron_cs_$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')" | base64 -w0)"

# Sanity check: each scenario's request answers 200 once before it is measured.
check() {
  local name="$1" path="$2" body="$3" auth="$4" fixtures="$5" dpop="" resp status
  local hdr=(-H 'content-type: application/x-www-form-urlencoded' -H 'accept: application/json')
  [[ -n "$auth" ]] && hdr+=(-H "Authorization: $auth")
  if [[ -n "$fixtures" ]]; then
    IFS=$'\t' read -r a dpop <"$fixtures"
    body="${body/\{A\}/$a}"
    [[ -n "$dpop" ]] && hdr+=(-H "DPoP: $dpop")
  fi
  resp="$(curl -sS -w '\n%{http_code}' -X POST "http://$ADDR$path" "${hdr[@]}" --data "$body")"
  status="${resp##*$'\n'}"
  resp="${resp%$'\n'*}"
  [[ "$status" == 200 ]] || die "$name: sanity request answered $status: $resp"
  echo "check $name: 200 $(jq -c '{token_type, expires_in, active, aud, scope} | with_entries(select(.value != null))' <<<"$resp")"
}
gen_fixtures 1 "$WORK_DIR/check.tsv" >/dev/null
check grant /token "$GRANT_BODY" "" "$WORK_DIR/check.tsv"
gen_fixtures 1 "$WORK_DIR/check.tsv" >/dev/null
check exchange /token "$(exchange_body "$(agent_token)")" "" "$WORK_DIR/check.tsv"
check secret /token "$SECRET_BODY" "$SECRET_AUTH" ""
check introspect /introspect "token=$(uri "$(secret_skill_token)")" "$SECRET_AUTH" ""
code_fixtures code 1 "$WORK_DIR/check.tsv"
check code /token "$CODE_BODY" "" "$WORK_DIR/check.tsv"
code_fixtures refresh 1 "$WORK_DIR/check.tsv"
check refresh /token "$REFRESH_BODY" "" "$WORK_DIR/check.tsv"
rm -f "$WORK_DIR/check.tsv"

# ---------------------------------------------------------------- scenarios
COUNT=$(( DUR * FIXTURE_RATE ))
for conns in $CONNS; do
  echo
  echo "=== connections: $conns"
  gen_fixtures "$COUNT" "$WORK_DIR/grant.tsv"
  run_scenario grant "$conns" /token "$GRANT_BODY" "" "$WORK_DIR/grant.tsv"

  subject="$(agent_token)"   # fresh: the agent token lives 300 s
  gen_fixtures "$COUNT" "$WORK_DIR/exchange.tsv"
  run_scenario exchange "$conns" /token "$(exchange_body "$subject")" "" "$WORK_DIR/exchange.tsv"

  run_scenario secret "$conns" /token "$SECRET_BODY" "$SECRET_AUTH" ""
  run_scenario secret_bad "$conns" /token "$SECRET_BODY" "$WRONG_AUTH" ""

  itoken="$(secret_skill_token)"   # fresh: the skill token lives 300 s
  run_scenario introspect "$conns" /introspect "token=$(uri "$itoken")" "$SECRET_AUTH" ""

  code_fixtures code "$COUNT" "$WORK_DIR/code.tsv"
  run_scenario code "$conns" /token "$CODE_BODY" "" "$WORK_DIR/code.tsv"
  code_fixtures refresh "$COUNT" "$WORK_DIR/refresh.tsv"
  run_scenario refresh "$conns" /token "$REFRESH_BODY" "" "$WORK_DIR/refresh.tsv"
done

if (( PACED_RATE > 0 )); then
  echo
  echo "=== paced: about $PACED_RATE requests/s offered over $PACED_CONNS connections"
  COUNT=$(( DUR * PACED_RATE * 5 / 4 ))
  gen_fixtures "$COUNT" "$WORK_DIR/grant.tsv"
  run_scenario "grant@$PACED_RATE" "$PACED_CONNS" /token "$GRANT_BODY" "" "$WORK_DIR/grant.tsv" "$PACED_RATE"
  subject="$(agent_token)"
  gen_fixtures "$COUNT" "$WORK_DIR/exchange.tsv"
  run_scenario "exchange@$PACED_RATE" "$PACED_CONNS" /token "$(exchange_body "$subject")" "" "$WORK_DIR/exchange.tsv" "$PACED_RATE"
fi

kill -0 "$SERVER_PID" 2>/dev/null || die "server died during the run (see $OUT/server-tokens.log)"
MEMORY="idle $idle, after load $(mib "$(rss_kib "$SERVER_PID")"), peak $(mib "$(hwm_kib "$SERVER_PID")")"
stop_server

# ---------------------------------------------------------------- crypto ceiling
echo
echo "=== openssl speed -seconds 3 ecdsap256 (pinned like the server: ${PIN_SERVER[*]:-none})"
"${PIN_SERVER[@]}" openssl speed -seconds 3 ecdsap256 2>/dev/null | tee "$OUT/openssl-speed.txt" | tail -n 3
read -r SIGN VERIFY < <(awk '/nistp256\)/ {print $(NF-1), $NF}' "$OUT/openssl-speed.txt" | tail -n1)
[[ -n "${SIGN:-}" && -n "${VERIFY:-}" ]] || die "could not parse openssl speed output"
bound() { awk -v s="$SIGN" -v v="$VERIFY" -v n="$1" 'BEGIN {printf "%.0f", 1 / (n / v + 1 / s)}'; }
GRANT_BOUND="$(bound 2)"
EXCHANGE_BOUND="$(bound 3)"

# ---------------------------------------------------------------- summary
{
  echo
  echo "=== summary (${DUR}s per run; SQLite; replay cache ${REDIS_URL:-in memory}; server: 1 worker on CPU 0; wrk -t1 on CPU 1)"
  printf '%-10s %5s %10s %9s %9s %8s %7s %24s %6s %7s %7s %6s\n' \
    scenario conns req/s p50 p99 non-200 sockerr fixtures-used/made gen srv-cpu oth-cpu heavy
  for row in "${SUMMARY[@]}"; do
    # shellcheck disable=SC2086
    printf '%-10s %5s %10s %9s %9s %8s %7s %24s %6s %7s %7s %6s\n' $row
  done
  echo
  echo "grant:      client_credentials, private_key_jwt + DPoP proof + resource (one fixture line per request)"
  echo "exchange:   RFC 8693 token exchange of a DPoP-bound agent token, private_key_jwt + DPoP + resource"
  echo "secret:     client_credentials, client_secret_basic + resource (no DPoP)"
  echo "secret_bad: the same with a wrong secret: every answer is 401 (all non-200, as intended)"
  echo "introspect: POST /introspect of a skill token, client_secret_basic"
  echo "code:       authorization_code exchange with PKCE of a public client (one code per request; refresh token issued)"
  echo "refresh:    refresh_token grant of the same client (one refresh token per request, rotated)"
  echo "NAME@RATE:  the same, paced by token.lua to about RATE requests/s offered (not saturated)"
  echo "non-200: counted by token.lua. fixtures: lines used / generated / ok or EXHAUSTED."
  echo "gen: time to generate that run's fixtures (before the run, while the server is idle)."
  echo "srv-cpu: the server's CPU time (all its threads) in % of its one core; near 100% = CPU-bound."
  echo "oth-cpu: CPU used during the run by anything but the server and wrk, in % of one core (interference)."
  echo "heavy: compiler/linker processes (cargo, rustc, ld, ...) seen just before or after the run."
  echo "memory: $MEMORY"
  echo
  echo "ECDSA P-256 (openssl, one core): sign ${SIGN}/s, verify ${VERIFY}/s"
  echo "crypto-bound grant    (2 verify + 1 sign): ${GRANT_BOUND}/s"
  echo "crypto-bound exchange (3 verify + 1 sign): ${EXCHANGE_BOUND}/s"
} | tee "$OUT/summary-tokens.txt"
