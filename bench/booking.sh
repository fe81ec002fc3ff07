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

write_book_lua

rush_lua=$(mktemp --suffix .lua)
cleanup_files+=("$rush_lua")
first=$(sed -n 's/^  {"\([^"]*\)", "\([^"]*\)"},$/\1 \2/p' "$seats_lua" | tail -n 1)
cat > "$rush_lua" <<LUA
wrk.method = "POST"
wrk.path = "/api/bookings/book"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
wrk.body = '{"showtime_id":"${first% *}","seat_ids":["${first#* }"]}'
LUA

backend=${DATABASE_URL:+PostgreSQL}
locks=${REDIS_URL:+Redis}
echo "backend: ${backend:-SQLite}, seat locks: ${locks:-memory}; $seat_count bookable seats"
printf '%-44s %10s %10s %10s %10s %10s\n' run req/s p50 p99 requests non-2xx
report "POST /book, one distinct seat each" "$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$book_lua" "$BASE")"
report "POST /book, 64 connections, one seat" "$(wrk -t2 -c64 -d5s --latency -s "$rush_lua" "$BASE")"
created=$(curl -fsS "$BASE/metrics" | awk -F' ' '/^bookings_total\{outcome="created"\}/ {print $2}')
conflicts=$(curl -fsS "$BASE/metrics" | awk -F' ' '/^bookings_total\{outcome="conflict"\}/ {print $2}')
errors=$(curl -fsS "$BASE/metrics" | { grep -E '^http_requests_total\{.*route="/api/bookings/book",status="5' || true; } | awk '{s+=$2} END {print s+0}')
echo "bookings created: $created, conflicts (409): $conflicts, 5xx on /book: $errors"
