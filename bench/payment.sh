#!/usr/bin/env bash
# Load report for payment: first wrk books one distinct seat per request (pending bookings to
# pay), then every request pays a different booking under a new Idempotency-Key (key claim,
# booking read through BookingApi, ledger row, simulated gateway, one transaction with the
# payment, its charge, the saved answer and payment.completed; then the relay and booking's
# consumer confirming the booking). Last, 64 connections replay one key (the saved answer).
#
#   bash bench/payment.sh                                   # single binary: SQLite, memory
#   DATABASE_URL=postgres://postgres@127.0.0.1/bench REDIS_URL=redis://127.0.0.1:6379/0 \
#     bash bench/payment.sh                                 # PostgreSQL + Redis
#   GATEWAY_LATENCY_MS=50 bash bench/payment.sh             # a gateway round trip per charge
#
# Server and wrk share this machine's cores: compare runs on the same box. Needs wrk.
CONNECTIONS="${CONNECTIONS:-32}"
PORT="${PORT:-18183}"
export BOXOFFICE__DATABASE__URL="${DATABASE_URL:-}"
export BOXOFFICE__DATABASE__SCHEMA_PREFIX="bench_$(date +%s)_"
export BOXOFFICE__DATABASE__MAX_CONNECTIONS=16
export BOXOFFICE__REDIS__URL="${REDIS_URL:-}"
export BOXOFFICE__REDIS__KEY_PREFIX="bench:$(date +%s):"
export BOXOFFICE__PAYMENT__GATEWAY__LATENCY_MS="${GATEWAY_LATENCY_MS:-0}"
source "$(dirname "$0")/common.sh"

write_book_lua
printf '%-44s %10s %10s %10s %10s %10s\n' run req/s p50 p99 requests non-2xx
report "POST /book (bookings to pay)" "$(wrk -t2 -c"$CONNECTIONS" -d"${BOOK_DURATION:-8s}" --latency -s "$book_lua" "$BASE")"

bookings_lua=$(mktemp --suffix .lua)
cleanup_files+=("$bookings_lua")
python3 - "$BASE" "$token" > "$bookings_lua" <<'PY'
import json, sys, urllib.request
base, token = sys.argv[1], sys.argv[2]
def get(p):
    req = urllib.request.Request(base + p, headers={"Authorization": "Bearer " + token})
    return json.load(urllib.request.urlopen(req))
page, ids = 1, []
while True:
    listed = get(f"/api/bookings/bookings?status=pending&per_page=100&page={page}")
    ids += [b["id"] for b in listed["items"]]
    if page * 100 >= listed["total"]:
        break
    page += 1
# The last one is paid apart, under the key the replay run sends.
print(f'replay_booking = "{ids.pop()}"')
print("bookings = {")
print("\n".join(f'  "{i}",' for i in ids))
print("}")
PY
count=$(grep -c '^  "' "$bookings_lua")

pay_lua=$(mktemp --suffix .lua)
cleanup_files+=("$pay_lua")
cat > "$pay_lua" <<LUA
dofile("$bookings_lua")
$per_thread_counter
function request()
  n = n + 2
  -- Past the last booking, bookings are paid again: those answers are 409 (non-2xx).
  local body = '{"booking_id":"' .. bookings[((n - 1) % #bookings) + 1] .. '","card_number":"4242424242424242","card_expiry":"12/30","card_cvc":"123"}'
  return wrk.format("POST", "/api/payments/pay", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer $token", ["Idempotency-Key"] = "bench-" .. n}, body)
end
LUA
report "POST /pay, a new key and booking each" "$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$pay_lua" "$BASE")"

replay_lua=$(mktemp --suffix .lua)
cleanup_files+=("$replay_lua")
first=$(sed -n 's/^replay_booking = "\(.*\)"$/\1/p' "$bookings_lua")
replay_body='{"booking_id":"'"$first"'","card_number":"4242424242424242","card_expiry":"12/30","card_cvc":"123"}'
curl -fsS -o /dev/null -X POST "$BASE/api/payments/pay" -H "Authorization: Bearer $token" \
  -H 'Idempotency-Key: bench-replay' -H 'Content-Type: application/json' -d "$replay_body"
cat > "$replay_lua" <<LUA
wrk.method = "POST"
wrk.path = "/api/payments/pay"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
wrk.headers["Idempotency-Key"] = "bench-replay"
wrk.body = '$replay_body'
LUA
report "POST /pay, 64 connections replaying one key" "$(wrk -t2 -c64 -d5s --latency -s "$replay_lua" "$BASE")"

metrics=$(curl -fsS "$BASE/metrics")
echo "answers of /pay by status:"; { grep -E '^http_requests_total\{.*route="/api/payments/pay"' || true; } <<<"$metrics"
completed=$(awk '/^payments_total\{status="completed"\}/ {print $2}' <<<"$metrics")
errors=$({ grep -E '^http_requests_total\{.*route="/api/payments/pay",status="5' || true; } <<<"$metrics" | awk '{s+=$2} END {print s+0}')
# Booking confirms each paid booking from payment.completed (payment's relay → bus → booking's
# consumer): how long until every completed payment has confirmed its booking.
confirmed_count() {
  curl -fsS -H "Authorization: Bearer $token" "$BASE/api/bookings/bookings?status=confirmed&per_page=1" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'
}
SECONDS=0
confirmed=$(confirmed_count)
while [ "$confirmed" -lt "${completed%.*}" ] && [ "$SECONDS" -lt 300 ]; do
  sleep 0.5
  confirmed=$(confirmed_count)
done
drained=$SECONDS
echo "pending bookings to pay: $count; payments completed: ${completed:-0}; 5xx on /pay: $errors"
echo "bookings confirmed: $confirmed, the last within ${drained}s after the load ended"
