#!/usr/bin/env bash
# The booking funnel's physical ceiling on this machine (docs/benchmarks.md, "Funnel ceiling"):
# what the databases alone can do of the work one completed booking costs.
#
# 1. Starts the release single binary on PostgreSQL + Redis + RabbitMQ with every statement of
#    its database logged, records 3 s of it idle, then one booking: book a seat, pay, and 3 s
#    for the events (checked after: the booking reads `confirmed`, both its e-mails are sent).
# 2. bench/replay.py takes that booking's transactions out of PostgreSQL's log (which module
#    made each: `pg_stat_activity.application_name`), leaving out the polls it also made idle.
# 3. Replays them, every id fresh each time, for DURATION from each number of clients in
#    CLIENTS: with pgbench on PostgreSQL, and with bench/replay.py on the modules' SQLite files
#    (as the single binary on SQLite lays them out). Each replay is one completed booking: the
#    best rate is the ceiling (past a few clients, more only queue for locks and cores).
#
#   bash bench/ceiling.sh                  # JSON lines on stdout
#   RESULTS=bench-results/X bash bench/ceiling.sh    # also into X/ceiling.jsonl (bench/run.sh),
#                                                    # the booking's transactions in X/ceiling/
#
# Environment: DURATION (10s), CLIENTS ("4 16 64"), PORT (18480), DATABASE_URL, REDIS_URL, AMQP_URL
# (as bench/run.sh), PG_LOG (PostgreSQL's log file; the newest /var/log/postgresql/*.log),
# BOXOFFICE_BIN (the binary; CI runs it briefly on a debug build to prove it works).
# Needs the release binary (bench/run.sh builds it), psql, pgbench, python3, and a superuser
# on PostgreSQL (to log one database's statements).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-4 16 64}
PORT=${PORT:-18480}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/6}
AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/boxoffice_bench}
PG_LOG=${PG_LOG:-$(ls -t /var/log/postgresql/*.log 2>/dev/null | head -n 1)}
BOXOFFICE=${BOXOFFICE_BIN:-$CARGO_TARGET_DIR/release/boxoffice}
DB=boxoffice_ceiling
BASE=http://127.0.0.1:$PORT
work=$(mktemp -d)
server=

say() { printf 'ceiling.sh: %s\n' "$*" >&2; }
trap 'say "failed at line $LINENO: $BASH_COMMAND"' ERR
die() { say "$*"; exit 1; }
cleanup() {
  [[ -z "$server" ]] || { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
  psql "$DATABASE_URL/postgres" -qc "ALTER DATABASE $DB RESET log_statement" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
[[ -x "$BOXOFFICE" ]] || die "no release binary at $BOXOFFICE (cargo build --release --bin boxoffice)"
[[ -r "$PG_LOG" ]] || die "cannot read PostgreSQL's log (PG_LOG='$PG_LOG')"
command -v pgbench >/dev/null || die "needs pgbench (postgresql-client)"
seconds=${DURATION%s}

# start DATA_DIR NAME=value...: the single binary with the demo catalog, until ready.
start() {
  local data=$1
  shift
  mkdir -p "$data"
  env "$@" BOXOFFICE__DATA_DIR="$data" BOXOFFICE__SERVER__BIND="127.0.0.1:$PORT" BOXOFFICE__DEMO__SEED=true \
    BOXOFFICE__SERVER__CLIENT_BUDGET_PER_MINUTE=0 BOXOFFICE__LOG__FILTER=warn \
    BOXOFFICE__AUTH__ARGON2_MEMORY_KIB=1024 BOXOFFICE__AUTH__ARGON2_ITERATIONS=1 \
    "$BOXOFFICE" serve >"$data/server.log" 2>&1 &
  server=$!
  for _ in $(seq 600); do
    curl -fs -o /dev/null "$BASE/health/ready" && return
    kill -0 "$server" 2>/dev/null || { tail -n 20 "$data/server.log" >&2; die "the server exited"; }
    sleep 0.1
  done
  die "the server was not ready within 60 s"
}
stop() {
  kill "$server"
  wait "$server" || true
  server=
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
offset() { stat -c %s "$PG_LOG"; }
# between FROM TO: the log's bytes between two offsets. (Not `tail | head`: the log grows
# meanwhile, and tail dies of the closed pipe, failing the pipeline.)
between() {
  python3 -c 'import sys; f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2]))
sys.stdout.buffer.write(f.read(int(sys.argv[3]) - int(sys.argv[2])))' "$PG_LOG" "$1" "$2"
}

say "recording one booking's statements (database $DB)"
psql "$DATABASE_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" \
  -c "ALTER DATABASE $DB SET log_statement = 'all'"
run=c$(date +%s)
start "$work/pg" BOXOFFICE__DATABASE__URL="$DATABASE_URL/$DB" BOXOFFICE__DATABASE__SCHEMA_PREFIX="${run}_" \
  BOXOFFICE__REDIS__URL="$REDIS_URL" BOXOFFICE__REDIS__KEY_PREFIX="$run:" BOXOFFICE__EVENTS__AMQP_URL="$AMQP_URL" \
  BOXOFFICE__EVENTS__EXCHANGE="$run.events" BOXOFFICE__EVENTS__QUEUE_PREFIX="$run."
curl -fsS -X POST "$BASE/api/auth/register" -H 'content-type: application/json' \
  -d '{"email":"ceiling@example.com","username":"ceiling","password":"ceiling password"}' >/dev/null
token=$(curl -fsS -X POST "$BASE/api/auth/token" -d 'username=ceiling&password=ceiling%20password' | json 'd["access_token"]')
auth=(-H "authorization: Bearer $token")
showtime=$(curl -fsS "$BASE/api/movies/showtimes?per_page=1" | json 'd["items"][0]["id"]')
seat=$(curl -fsS "$BASE/api/movies/showtimes/$showtime/seats" | json '[s["id"] for s in d["seats"] if s["status"] == "available"][0]')
sleep 1
idle_from=$(offset)
sleep 3
idle_to=$(offset)
booking=$(curl -fsS "${auth[@]}" -X POST "$BASE/api/bookings/book" -H 'content-type: application/json' \
  -d "{\"showtime_id\":\"$showtime\",\"seat_ids\":[\"$seat\"]}" | json 'd["id"]')
curl -fsS "${auth[@]}" -X POST "$BASE/api/payments/pay" -H 'content-type: application/json' \
  -H "idempotency-key: $(python3 -c 'import uuid; print(uuid.uuid4())')" \
  -d "{\"booking_id\":\"$booking\",\"card_number\":\"4242424242424242\",\"card_expiry\":\"12/40\",\"card_cvc\":\"123\"}" >/dev/null
# Time for the events, consumers and e-mails (pay → confirmed takes a fraction of a second);
# the booking is checked after the window, so that the checks' reads are not in it.
sleep 3
booking_to=$(offset)
status=$(curl -fsS "${auth[@]}" "$BASE/api/bookings/bookings/$booking" | json 'd["status"]')
sent=$(curl -fsS "${auth[@]}" "$BASE/api/notifications/notifications" | json 'sum(n["status"] == "sent" for n in d["items"])')
[[ "$status" == confirmed && "$sent" == 2 ]] || die "the booking did not end confirmed with two e-mails ($status, $sent sent)"
psql "$DATABASE_URL/$DB" -Atc "SELECT pid, substr(application_name, 11) FROM pg_stat_activity
  WHERE datname = '$DB' AND application_name LIKE 'boxoffice-%'" | tr '|' ' ' >"$work/pids"
stop
psql "$DATABASE_URL/postgres" -qc "ALTER DATABASE $DB RESET log_statement"
between "$idle_from" "$idle_to" >"$work/idle.log"
# From the end of the idle window: the booking's requests come after it.
between "$idle_to" "$booking_to" >"$work/booking.log"
python3 "$ROOT/bench/replay.py" extract "$work/booking.log" "$work/idle.log" "$work/pids" "$work/booking.json"
# Kept beside the reports (not as *.json: those are the bench tool's).
[[ -z "${RESULTS:-}" ]] || { mkdir -p "$RESULTS/ceiling"; cp "$work/booking.json" "$RESULTS/ceiling/booking.json"; }

python3 "$ROOT/bench/replay.py" pgbench "$work/booking.json" "${run}_" "$work/booking.pgbench"
psql "$DATABASE_URL/$DB" -qc ANALYZE
start "$work/sqlite"
stop
for clients in $CLIENTS; do
  say "replaying on PostgreSQL: pgbench, $clients clients, $DURATION"
  out=$(pgbench -n -M simple -f "$work/booking.pgbench" -c "$clients" -j 2 -T "$seconds" "$DATABASE_URL/$DB" 2>&1) \
    || { echo "$out" | tail -n 20 >&2; die "pgbench failed"; }
  ! grep -q aborted <<<"$out" || { echo "$out" | grep aborted | head -n 5 >&2; die "a pgbench client aborted"; }
  pg=$(python3 - "$out" "$work/booking.json" "$clients" <<'PY'
import json, re, sys
out, txns, clients = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
lat = re.search(r"latency average = ([\d.]+) ms", out)
print(json.dumps({"backend": "postgres", "clients": clients, "per_second": round(tps, 1),
                  "latency_avg_ms": float(lat.group(1)) if lat else None,
                  "transactions_per_booking": len(txns), "commits_per_booking": sum(t["end"] != "ROLLBACK" for t in txns),
                  "writing_transactions_per_booking": sum(any(not s.upper().startswith("SELECT") for s in t["statements"]) for t in txns),
                  "statements_per_booking": sum(len(t["statements"]) for t in txns),
                  "by_module": {m: sum(t["module"] == m for t in txns) for m in sorted({t["module"] for t in txns})}}))
PY
  )
  echo "$pg"
  say "replaying on SQLite: $clients clients, $DURATION"
  sq=$(python3 "$ROOT/bench/replay.py" sqlite "$work/booking.json" "$work/sqlite" "$seconds" "$clients") \
    || die "the SQLite replay failed: $sq"
  echo "$sq"
  [[ -z "${RESULTS:-}" ]] || printf '%s\n%s\n' "$pg" "$sq" >>"$RESULTS/ceiling.jsonl"
done
