#!/usr/bin/env bash
# Load report for booking: every request books one distinct seat (so nearly all are 201 and
# each is a real hold: seat-lock take, one transaction with the booking, its seat, its claim
# and its outbox event, then the relay publishing booking.created to the bus and movie's
# consumer updating seats_available), then a rush where 64 connections fight for one seat.
#
#   bash bench/booking.sh                                   # single binary: SQLite, memory
#   DATABASE_URL=postgres://postgres@127.0.0.1/bench REDIS_URL=redis://127.0.0.1:6379/0 \
#     bash bench/booking.sh                                 # PostgreSQL + Redis
#
# Server and wrk share this machine's cores: compare runs on the same box. Needs wrk.
CONNECTIONS="${CONNECTIONS:-32}"
PORT="${PORT:-18182}"
export BOXOFFICE__DATABASE__URL="${DATABASE_URL:-}"
export BOXOFFICE__DATABASE__SCHEMA_PREFIX="bench_$(date +%s)_"
export BOXOFFICE__DATABASE__MAX_CONNECTIONS=16
export BOXOFFICE__REDIS__URL="${REDIS_URL:-}"
export BOXOFFICE__REDIS__KEY_PREFIX="bench:$(date +%s):"
source "$(dirname "$0")/common.sh"

# Every (showtime, seat) of the demo catalog, as a Lua table wrk cycles through.
seats_lua=$(mktemp --suffix .lua)
cleanup_files+=("$seats_lua")
python3 - "$BASE" > "$seats_lua" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
get = lambda p: json.load(urllib.request.urlopen(base + p))
pairs = []
page = 1
while True:
    shows = get(f"/api/movies/showtimes?per_page=100&page={page}")
    for s in shows["items"]:
        for seat in get(f"/api/movies/showtimes/{s['id']}/pricing")["seats"]:
            pairs.append((s["id"], seat["id"]))
    if page * 100 >= shows["total"]:
        break
    page += 1
print("seat_pairs = {")
for show, seat in pairs:
    print(f'  {{"{show}", "{seat}"}},')
print("}")
PY
count=$(grep -c '^  {' "$seats_lua")

book_lua=$(mktemp --suffix .lua)
cleanup_files+=("$book_lua")
cat > "$book_lua" <<LUA
dofile("$seats_lua")
local threads = {}
function setup(thread) thread:set("id", #threads); table.insert(threads, thread) end
function init(args) n = id end
function request()
  n = n + 2
  local p = seat_pairs[(n % #seat_pairs) + 1]
  local body = '{"showtime_id":"' .. p[1] .. '","seat_ids":["' .. p[2] .. '"]}'
  return wrk.format("POST", "/api/bookings/book", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer $token"}, body)
end
LUA

rush_lua=$(mktemp --suffix .lua)
cleanup_files+=("$rush_lua")
first=$(sed -n 's/^  {"\([^"]*\)", "\([^"]*\)"},$/\1 \2/p' "$seats_lua" | tail -n 1)
cat > "$rush_lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
wrk.body = '{"showtime_id":"${first% *}","seat_ids":["${first#* }"]}'
LUA

report() { # name, wrk output
  local rps p50 p99 non2xx total
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$2")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$2")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$2")
  total=$(awk '/requests in/ {print $1}' <<<"$2")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$2")
  printf '%-40s %10s %10s %10s %10s %10s\n' "$1" "$rps" "$p50" "$p99" "$total" "${non2xx:-0}"
}
backend=${DATABASE_URL:+PostgreSQL}
locks=${REDIS_URL:+Redis}
echo "backend: ${backend:-SQLite}, seat locks: ${locks:-memory}; $count bookable seats"
printf '%-40s %10s %10s %10s %10s %10s\n' run req/s p50 p99 requests non-2xx
report "POST /book, one distinct seat each" "$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$book_lua" "$BASE")"
report "POST /book, 64 connections, one seat" "$(wrk -t2 -c64 -d5s --latency -s "$rush_lua" "$BASE")"
created=$(curl -fsS "$BASE/metrics" | awk -F' ' '/^bookings_total\{outcome="created"\}/ {print $2}')
conflicts=$(curl -fsS "$BASE/metrics" | awk -F' ' '/^bookings_total\{outcome="conflict"\}/ {print $2}')
errors=$(curl -fsS "$BASE/metrics" | grep -E '^http_requests_total\{.*route="/api/bookings/book",status="5' | awk '{s+=$2} END {print s+0}')
echo "bookings created: $created, conflicts (409): $conflicts, 5xx on /book: $errors"
