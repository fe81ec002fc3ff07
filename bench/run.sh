#!/usr/bin/env bash
# Runs the benchmark suite on this machine and writes docs/benchmarks.md and its plots
# (docs/img/bench-*.svg): builds the release binaries, starts each deployment in turn, runs
# every scenario of the `bench` tool against it (the ceiling, `GET /health/live`, in the same
# run), stops it, and renders the JSON reports (bench/report.py).
#
#   bash bench/run.sh                      # sqlite postgres split ceiling
#   bash bench/run.sh sqlite               # only those named
#   DURATION=30s FLASH_USERS=1000 bash bench/run.sh sqlite
#   bash bench/run.sh sqlite postgres split curves    # and the cost curves
#   RESULTS=bench-results/X bash bench/run.sh curves  # add them to an earlier run's report
#
# What to run:
#   sqlite    the single binary: SQLite, in-memory adapters, in-process bus
#   postgres  the single binary on PostgreSQL + Redis + RabbitMQ
#   split     one process per module behind the nginx gateway (deploy/split.sh)
#   ceiling   the funnel's physical ceiling: one booking's statements and commits replayed by
#             pgbench and on SQLite (bench/ceiling.sh)
#   curves    the cost curves on the single binary (SQLite): the seat map at 54, 208, 1,000 and
#             5,000 seats, the catalog at 10, 1,000 and 100,000 movies, the flash sale at
#             1,000, 10,000 and 50,000 users (about 10 minutes)
#
# The report (docs/benchmarks.md) is made from every JSON report in RESULTS.
#
# Environment: DURATION (each timed scenario, default 10s), CLIENTS (catalog, seat map,
# funnel; 64), FLASH_USERS (10000), FLASH_CLIENTS (256), FLASH_SEATS (500), FLASH_CONNECTIONS
# (2000: the flash sale again, with that many buyers at once), FLASH_FOLLOWERS (1000: the
# flash sale again, followed live by that many seat maps), RACE_CLIENTS (40),
# SEATS (the seat map's theater, 208), PORT (the single binary's, 18480), BASE_PORT (the
# split's, 18500), DATABASE_URL (postgres://postgres@127.0.0.1:5432), REDIS_URL
# (redis://127.0.0.1:6379/6), AMQP_URL (amqp://guest:guest@127.0.0.1:5672/boxoffice_bench;
# the vhost must exist), RESULTS (where the JSON goes; default a new bench-results/<date>),
# PRODUCTION_ARGON2=1 (register users at the production Argon2 cost: set-up then takes
# minutes per 10,000 users; it changes no measured request), DOCS=0 (do not write docs/).
#
# PostgreSQL on these machines runs without autovacuum: every scenario is preceded by ANALYZE
# of the benchmark's database. Needs PostgreSQL, Redis, RabbitMQ (postgres, split), nginx
# (split), python3; wrk when installed adds wrk's figures of the ceiling and catalog list.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-64}
FLASH_USERS=${FLASH_USERS:-10000}
FLASH_CLIENTS=${FLASH_CLIENTS:-256}
FLASH_SEATS=${FLASH_SEATS:-500}
FLASH_CONNECTIONS=${FLASH_CONNECTIONS:-2000}
FLASH_FOLLOWERS=${FLASH_FOLLOWERS:-1000}
RACE_CLIENTS=${RACE_CLIENTS:-40}
SEATS=${SEATS:-208}
PORT=${PORT:-18480}
BASE_PORT=${BASE_PORT:-18500}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/6}
AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/boxoffice_bench}
RESULTS=${RESULTS:-$ROOT/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
DB=boxoffice_bench
SPLIT_NAME=boxoffice_bench_split
DEPLOYMENTS=("$@")
((${#DEPLOYMENTS[@]})) || DEPLOYMENTS=(sqlite postgres split ceiling)

say() { printf 'run.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# The admin the scenarios create showtimes as: made at start by each deployment.
export BENCH_ADMIN_EMAIL=bench-admin@bench.example
export BENCH_ADMIN_PASSWORD="bench admin password"
# What every deployment runs with. The per-client request budget is off: all the load comes
# from one machine, as from behind a gateway. Access tokens outlive a long set-up.
export BOXOFFICE__SERVER__CLIENT_BUDGET_PER_MINUTE=0
export BOXOFFICE__AUTH__ACCESS_TOKEN_TTL_SECONDS=7200
export BOXOFFICE__LOG__FILTER=warn
if [[ "${PRODUCTION_ARGON2:-0}" != 1 ]]; then
  # Registering 10,000 users costs 20,000 Argon2 hashes; at the production cost (19 MiB, 2
  # passes) that is minutes on 2 cores. No measured request hashes a password.
  export BOXOFFICE__AUTH__ARGON2_MEMORY_KIB=1024 BOXOFFICE__AUTH__ARGON2_ITERATIONS=1
fi

for d in "${DEPLOYMENTS[@]}"; do
  [[ "$d" =~ ^(sqlite|postgres|split|curves|ceiling)$ ]] || die "unknown deployment '$d' (sqlite, postgres, split, curves, ceiling)"
done
command -v python3 >/dev/null || die "needs python3"
mkdir -p "$RESULTS"
say "results in $RESULTS"
# Every run into this directory, an interrupted one included (its reports stay in RESULTS).
echo "command=DURATION=$DURATION bash bench/run.sh ${DEPLOYMENTS[*]}" >>"$RESULTS/machine.env"

say "building the release binaries (boxoffice, bench)"
cargo build --release --quiet --bin boxoffice
cargo build --release --quiet -p boxoffice-bench --bin bench
BOXOFFICE=$CARGO_TARGET_DIR/release/boxoffice
BENCH=$CARGO_TARGET_DIR/release/bench
# 256 buyers, 64 pollers, and the servers' own sockets.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

SERVER_PID=
SPLIT_UP=0
split_env() {
  env BASE_PORT="$BASE_PORT" STATE_DIR="$RESULTS/split-state" SPLIT_NAME="$SPLIT_NAME" DATABASE_URL="$DATABASE_URL" \
    REDIS_URL="$REDIS_URL" AMQP_URL="$AMQP_URL" BOXOFFICE_BIN="$BOXOFFICE" "$@"
}
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if ((SPLIT_UP)); then split_env "$ROOT/deploy/split.sh" purge >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

# ANALYZE of the deployment's database; a PostgreSQL shared with others may refuse the
# connection for a moment (too many clients): that costs the statistics, not the run.
analyze() {
  local db
  case "${1%@*}" in
    postgres) db=$DB ;;
    split) db=$SPLIT_NAME ;;
    *) return 0 ;;
  esac
  psql "$DATABASE_URL/$db" -qc ANALYZE || say "ANALYZE of $db failed: this scenario runs on older statistics"
}

# Starts the single binary on $PORT with a fresh data dir, the demo catalog (7 movies: the
# catalog scenario reads it), and the environment "$@" (NAME=value).
start_single() {
  local data=$RESULTS/$1-data
  shift
  mkdir -p "$data"
  env "$@" BOXOFFICE__DATA_DIR="$data" BOXOFFICE__SERVER__BIND="127.0.0.1:$PORT" BOXOFFICE__DEMO__SEED=true \
    BOXOFFICE__AUTH__ADMIN_EMAIL="$BENCH_ADMIN_EMAIL" BOXOFFICE__AUTH__ADMIN_PASSWORD="$BENCH_ADMIN_PASSWORD" \
    "$BOXOFFICE" serve >"$data/server.log" 2>&1 &
  SERVER_PID=$!
  local i
  for ((i = 0; i < 600; i++)); do
    curl -fs -o /dev/null "http://127.0.0.1:$PORT/health/ready" && return
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 30 "$data/server.log" >&2; die "the server exited"; }
    sleep 0.1
  done
  die "the server was not ready within 60 s"
}

stop_single() {
  kill "$SERVER_PID"
  wait "$SERVER_PID" || true
  SERVER_PID=
}

# The pids of the deployment's boxoffice processes (the single binary, or the split's
# services from their pid files; not the gateway).
server_pids() {
  if [[ -n "$SERVER_PID" ]]; then
    echo "$SERVER_PID"
  else
    local f
    for f in "$RESULTS"/split-state/pids/*.pid; do
      [[ "$f" == */gateway.pid ]] || cat "$f"
    done
  fi
}

# Samples the summed RSS (KiB) of the deployment's processes every half second into file $1,
# keeping the peak, until killed.
sample_rss() {
  local peak=0 now pids
  pids=$(server_pids | paste -sd, -)
  while :; do
    now=$( (ps -o rss= -p "$pids" || true) | awk '{s += $1} END {print s + 0}')
    ((now > peak)) && peak=$now && echo "$peak" >"$1"
    sleep 0.5
  done
}

FAILED=()
# bench LABEL BASE SCENARIO ARGS...: one scenario; a failed check is recorded, not fatal, so
# that every scenario runs and the report shows what failed. The peak RSS of the servers
# during it goes to rss-LABEL-SCENARIO.kib.
bench() {
  local label=$1 base=$2 sampler
  shift 2
  analyze "$label"
  say "$label: bench $*"
  sample_rss "$RESULTS/rss-$label-$1.kib" &
  sampler=$!
  if ! "$BENCH" --base "$base" --label "$label" --out "$RESULTS" "${BENCH_ARGS[@]}" "$@" >>"$RESULTS/$label.md"; then
    FAILED+=("$label $1")
  fi
  kill "$sampler"
  wait "$sampler" 2>/dev/null || true
}

# wrk's view of a GET, for comparison with the tool's own (wrk is leaner than a Rust client
# that parses every answer): one JSON line in wrk-<label>.jsonl.
wrk_get() {
  local label=$1 url=$2 out
  command -v wrk >/dev/null || return 0
  out=$(wrk -t2 -c"$CLIENTS" -d"$DURATION" --latency "$url")
  python3 - "$label" "$url" "$CLIENTS" "$out" >>"$RESULTS/wrk-$label.jsonl" <<'PY'
import json, re, sys
label, url, clients, out = sys.argv[1:]
ms = lambda v: float(v[:-2]) if v.endswith("ms") else float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-1]) * 1000
pct = {m.group(1): ms(m.group(2)) for m in re.finditer(r"^\s+(50|90|99)%\s+(\S+)", out, re.M)}
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print(json.dumps({"label": label, "url": url, "clients": int(clients), "per_second": rps, "p50_ms": pct.get("50"), "p99_ms": pct.get("99"),
                  "non_2xx": int(non2xx.group(1)) if non2xx else 0}))
PY
}

# Every scenario against BASE; CEILING is the URL of a bare handler of the deployment.
scenarios() {
  local label=$1 base=$2 ceiling=$3
  bench "$label" "$ceiling" ceiling --duration "$DURATION" --clients "$CLIENTS"
  wrk_get "$label" "$ceiling/health/live"
  bench "$label" "$base" catalog --duration "$DURATION" --clients "$CLIENTS"
  wrk_get "$label" "$base/api/movies/movies"
  bench "$label" "$base" seatmap --duration "$DURATION" --clients "$CLIENTS" --seats "$SEATS"
  bench "$label" "$base" race --clients "$RACE_CLIENTS"
  bench "$label" "$base" flash --users "$FLASH_USERS" --clients "$FLASH_CLIENTS" --seats "$FLASH_SEATS"
  # The same sale with every connection at once; a label of its own keeps the flash row above.
  bench "$label@$FLASH_CONNECTIONS" "$base" flash --users "$FLASH_USERS" --clients "$FLASH_CONNECTIONS" --seats "$FLASH_SEATS"
  # And with the site's seat maps following it (the seat-state stream): how late they see seats go.
  bench "$label@$FLASH_FOLLOWERS-maps" "$base" flash --users "$FLASH_USERS" --clients "$FLASH_CLIENTS" --seats "$FLASH_SEATS" --followers "$FLASH_FOLLOWERS"
  bench "$label" "$base" funnel --duration "$DURATION" --clients "$CLIENTS"
}

# The cost curves, on a fresh single binary each (SQLite): the seat map by seats, the catalog
# by movies (created through the API: 100,000 take minutes), the flash sale by users.
curves() {
  local base=http://127.0.0.1:$PORT label=curve
  start_single curve-catalog
  local movies
  for movies in 10 1000 100000; do
    bench "$label" "$base" catalog --duration "$DURATION" --clients "$CLIENTS" --movies "$movies"
  done
  stop_single
  start_single curve-seatmap
  local seats
  for seats in 54 208 1000 5000; do
    bench "$label" "$base" seatmap --duration "$DURATION" --clients "$CLIENTS" --seats "$seats"
  done
  stop_single
  local users
  for users in 1000 10000 50000; do
    start_single "curve-flash-$users"
    bench "$label" "$base" flash --users "$users" --clients "$FLASH_CLIENTS" --seats "$FLASH_SEATS"
    stop_single
  done
}

BENCH_ARGS=()
for deployment in "${DEPLOYMENTS[@]}"; do
  say "deployment $deployment"
  case "$deployment" in
    sqlite)
      start_single sqlite
      scenarios sqlite "http://127.0.0.1:$PORT" "http://127.0.0.1:$PORT"
      stop_single
      ;;
    postgres)
      psql "$DATABASE_URL/postgres" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
        || psql "$DATABASE_URL/postgres" -qc "CREATE DATABASE $DB"
      # A schema, key and queue prefix of this run's own: runs never see each other's data.
      run=b$(date +%s)
      start_single postgres BOXOFFICE__DATABASE__URL="$DATABASE_URL/$DB" BOXOFFICE__DATABASE__SCHEMA_PREFIX="${run}_" \
        BOXOFFICE__REDIS__URL="$REDIS_URL" BOXOFFICE__REDIS__KEY_PREFIX="$run:" BOXOFFICE__EVENTS__AMQP_URL="$AMQP_URL" \
        BOXOFFICE__EVENTS__EXCHANGE="$run.events" BOXOFFICE__EVENTS__QUEUE_PREFIX="$run."
      scenarios postgres "http://127.0.0.1:$PORT" "http://127.0.0.1:$PORT"
      stop_single
      ;;
    split)
      SPLIT_UP=1
      out=$(split_env DEMO=1 ADMIN_EMAIL="$BENCH_ADMIN_EMAIL" ADMIN_PASSWORD="$BENCH_ADMIN_PASSWORD" "$ROOT/deploy/split.sh" up)
      gateway=$(sed -n 's/^GATEWAY_URL=//p' <<<"$out")
      # The gateway limits logins and bookings per client address (10/s after a burst of
      # 100): the clients send from many loopback addresses, as many customers would. It
      # does not route /health: the ceiling is the movie process's own.
      BENCH_ARGS=(--sources 256)
      scenarios split "$gateway" "http://127.0.0.1:$((BASE_PORT + 2))"
      BENCH_ARGS=()
      # The processes' and the gateway's logs outlive the purge, for what a failure left there.
      cp -r "$RESULTS/split-state/logs" "$RESULTS/split-logs"
      split_env "$ROOT/deploy/split.sh" purge >&2
      SPLIT_UP=0
      ;;
    curves) curves ;;
    ceiling)
      # From 4, 16 and 64 clients (CEILING_CLIENTS): the best is the ceiling.
      env RESULTS="$RESULTS" DURATION="$DURATION" CLIENTS="${CEILING_CLIENTS:-4 16 64}" PORT="$PORT" DATABASE_URL="$DATABASE_URL" \
        REDIS_URL="$REDIS_URL" AMQP_URL="$AMQP_URL" BOXOFFICE_BIN="$BOXOFFICE" bash "$ROOT/bench/ceiling.sh" >/dev/null \
        || FAILED+=("ceiling")
      ;;
  esac
done

{
  echo "nproc=$(nproc)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "memory_gib=$(free -g | awk '/^Mem:/ {print $2}')"
  echo "commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo +changes)"
  echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
  echo "argon2=$([[ "${PRODUCTION_ARGON2:-0}" == 1 ]] && echo production || echo 'cheap (1 MiB, 1 pass) for set-up')"
} >>"$RESULTS/machine.env"
if [[ "${DOCS:-1}" == 1 ]]; then
  python3 "$ROOT/bench/report.py" "$RESULTS" "$ROOT/docs"
  say "wrote docs/benchmarks.md and docs/img/bench-*.svg"
fi
if ((${#FAILED[@]})); then
  say "failed checks: ${FAILED[*]} (see $RESULTS/*.md)"
  exit 1
fi
