#!/usr/bin/env bash
# The five-module tour of boxoffice, as a script: accounts, the catalog, an admin's writes,
# booking, paying, refunds and notifications, against a running server. It checks the status
# of every call and stops with a non-zero exit at the first unexpected one, so CI runs it
# (.ci/run) and the tour cannot drift from the code. docs/walkthrough.md explains how to run it.
#
#   BASE_URL        the server (default http://127.0.0.1:8080)
#   OPS_URL         where /health/ready and /metrics are answered (default BASE_URL): behind a
#                   gateway, which does not route them, one process of the deployment
#   ADMIN_EMAIL     an admin account of that server (default admin@example.com) and its
#   ADMIN_PASSWORD  password (default "walkthrough admin password"): start the server with
#                   BOXOFFICE__AUTH__ADMIN_EMAIL and BOXOFFICE__AUTH__ADMIN_PASSWORD set to them
#
# Needs bash, curl and python3 (for reading JSON). The server must have the demo catalog (the
# default `demo.seed = true` on an empty catalog). Every run registers new users, so it can run
# again on the same server; ids are read from the answers, never written down.
set -euo pipefail

BASE_URL="${BASE_URL:-http://127.0.0.1:8080}"
ADMIN_EMAIL="${ADMIN_EMAIL:-admin@example.com}"
ADMIN_PASSWORD="${ADMIN_PASSWORD:-walkthrough admin password}"
OPS_URL="${OPS_URL:-$BASE_URL}"
RUN=$(python3 -c 'import secrets; print(secrets.token_hex(4))')
PASSWORD="correct-horse-battery"
JSON='Content-Type: application/json'

BODY= STATUS= HEADERS=
step() { printf '\n## %s\n' "$*"; }

# call EXPECTED METHOD PATH [curl arguments...]: the answer's body goes to $BODY, its headers
# to $HEADERS; any other status than EXPECTED stops the script.
call() {
  local expected=$1 method=$2 path=$3 out
  shift 3
  out=$(mktemp -d)
  STATUS=$(curl -sS -D "$out/headers" -o "$out/body" -w '%{http_code}' -X "$method" "$BASE_URL$path" "$@")
  HEADERS=$(cat "$out/headers")
  BODY=$(cat "$out/body")
  rm -rf "$out"
  printf '%s %s -> %s\n' "$method" "$path" "$STATUS"
  if [[ "$STATUS" != "$expected" ]]; then
    printf 'FAIL: expected %s, got %s\n%s\n' "$expected" "$STATUS" "$BODY" >&2
    exit 1
  fi
}

# py EXPRESSION: evaluates EXPRESSION with `d` bound to $BODY parsed as JSON and prints the
# result (JSON for lists and objects, as is for strings and numbers).
py() {
  printf '%s' "$BODY" | python3 -c '
import json, sys
d = json.load(sys.stdin)
r = eval(sys.argv[1])
print(r if isinstance(r, (str, int, float)) else json.dumps(r, ensure_ascii=False))' "$1"
}

# expect ACTUAL WANTED WHAT: a check on a value read from an answer.
expect() {
  if [[ "$1" != "$2" ]]; then
    printf 'FAIL: %s is %s, expected %s\n%s\n' "$3" "$1" "$2" "$BODY" >&2
    exit 1
  fi
}

# until_true SECONDS COMMAND...: retries COMMAND (quietly) until it succeeds, for what
# follows an event (eventual consistency); fails after SECONDS.
until_true() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then echo "FAIL: timed out waiting for: $*" >&2; exit 1; fi
    sleep 0.2
  done
}

register() { # name -> prints nothing; the account is <name>-$RUN
  call 201 POST /api/auth/register -H "$JSON" \
    -d "{\"email\": \"$1-$RUN@example.com\", \"username\": \"$1-$RUN\", \"password\": \"$PASSWORD\"}"
}
token() { # username-or-email password -> $BODY is the token pair
  call 200 POST /api/auth/token --data-urlencode "username=$1" --data-urlencode "password=$2"
}

step "Accounts"
register alice
py '{k: d[k] for k in ("email", "username", "role")}'
expect "$(printf '%s' "$HEADERS" | grep -i '^location:' | tr -d '\r' | cut -d' ' -f2)" /api/auth/me "Location"

# The password grant is form-encoded (JSON works too); `username` may be the email.
token "alice-$RUN" "$PASSWORD"
ALICE=$(py 'd["access_token"]')
REFRESH=$(py 'd["refresh_token"]')
call 200 POST /api/auth/token -H "$JSON" \
  -d "{\"username\": \"alice-$RUN@example.com\", \"password\": \"$PASSWORD\"}"
call 200 GET /api/auth/me -H "Authorization: Bearer $ALICE"
expect "$(py 'd["username"]')" "alice-$RUN" "username"

# Refreshing retires the refresh token; presenting it again is reuse: 401, and the whole
# session (the new token too) is revoked.
call 200 POST /api/auth/refresh -H "$JSON" -d "{\"refresh_token\": \"$REFRESH\"}"
NEWER=$(py 'd["refresh_token"]')
call 401 POST /api/auth/refresh -H "$JSON" -d "{\"refresh_token\": \"$REFRESH\"}"
py 'd["type"]'
call 401 POST /api/auth/refresh -H "$JSON" -d "{\"refresh_token\": \"$NEWER\"}"

# Logout revokes a session's refresh tokens; access tokens live on until they expire.
token "alice-$RUN" "$PASSWORD"
REFRESH=$(py 'd["refresh_token"]')
call 204 POST /api/auth/logout -H "$JSON" -d "{\"refresh_token\": \"$REFRESH\"}"
call 401 POST /api/auth/refresh -H "$JSON" -d "{\"refresh_token\": \"$REFRESH\"}"
call 200 GET /api/auth/jwks
py '[k["alg"] for k in d["keys"]]'

step "Failed logins slow down"
# Five wrong passwords for one account from one address are answered 401; the sixth attempt
# waits (429 with Retry-After), even with the right password.
register mallory
for attempt in 1 2 3 4 5; do
  call 401 POST /api/auth/token --data-urlencode "username=mallory-$RUN" --data-urlencode "password=wrong guess $attempt"
done
call 429 POST /api/auth/token --data-urlencode "username=mallory-$RUN" --data-urlencode "password=$PASSWORD"
printf '%s' "$HEADERS" | grep -i '^retry-after:'
py 'd["type"]'

step "The catalog (public)"
call 200 GET /api/movies/movies
py '{"total": d["total"], "titles": [m["title"] for m in d["items"]]}'
call 200 GET '/api/movies/movies?genre=sci-fi'
py '[m["title"] for m in d["items"]]'

call 200 GET /api/movies/theaters
ROOM=$(py '[t["id"] for t in d["items"] if t["name"] == "Screening Room"][0]')
utc_day() { python3 -c 'import datetime, sys; print(datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=int(sys.argv[1])))' "$1"; }
DAY=$(utc_day 1)
call 200 GET "/api/movies/showtimes?date=$DAY&theater_id=$ROOM"
SHOW=$(py '[s["id"] for s in d["items"] if s["start_time"].endswith("T18:00:00Z")][0]')
py '[(s["start_time"], s["price_cents"], s["seats_available"]) for s in d["items"]]'

# The seat map: every seat with its price (a premium seat costs 1.5 times the showtime's
# price, rounded half up) and its state.
call 200 GET "/api/movies/showtimes/$SHOW/seats"
py 'sorted({(s["type"], s["price_cents"]) for s in d["seats"]})'
SEATS=$BODY
# seat LABEL...: the ids of seats named like F5, from the seat map read above.
seat_ids() {
  printf '%s' "$SEATS" | python3 -c '
import json, sys
seats = {s["row"] + str(s["number"]): s["id"] for s in json.load(sys.stdin)["seats"]}
print(json.dumps([seats[label] for label in sys.argv[1:]]))' "$@"
}
# Two free premium seats side by side, and the one after them (a rerun picks others).
read -r A B C < <(printf '%s' "$SEATS" | python3 -c '
import json, sys
free = {(s["row"], s["number"]) for s in json.load(sys.stdin)["seats"]
        if s["type"] == "premium" and s["status"] == "available"}
row, n = min((r, n) for r, n in free if (r, n + 1) in free and (r, n + 2) in free)
print(f"{row}{n} {row}{n + 1} {row}{n + 2}")')

step "Managing the catalog (admin)"
token "$ADMIN_EMAIL" "$ADMIN_PASSWORD"
ADMIN=$(py 'd["access_token"]')
call 201 POST /api/movies/movies -H "Authorization: Bearer $ADMIN" -H "$JSON" \
  -d '{"title": "Night Train to Lisbon", "description": "A teacher leaves everything behind for a book.",
       "duration_minutes": 111, "genre": "Drama", "release_date": "2026-11-20", "rating": "PG-13"}'
MOVIE=$(py 'd["id"]')
call 201 POST /api/movies/theaters -H "Authorization: Bearer $ADMIN" -H "$JSON" \
  -d "{\"name\": \"Rooftop $RUN\", \"location\": \"Level 5\", \"layout\": [
       {\"row\": \"A\", \"seats\": 4, \"type\": \"accessible\"}, {\"row\": \"B\", \"seats\": 6},
       {\"row\": \"C\", \"seats\": 6, \"type\": \"premium\"}]}"
ROOF=$(py 'd["id"]')
py '{"name": d["name"], "seats": len(d["seats"])}'
DAY2=$(utc_day 2)
showtime() { # HH:MM -> a showtime of the new movie on the roof
  printf '{"movie_id": "%s", "theater_id": "%s", "start_time": "%sT%s:00Z", "price_cents": 1250}' \
    "$MOVIE" "$ROOF" "$DAY2" "$1"
}
call 201 POST /api/movies/showtimes -H "Authorization: Bearer $ADMIN" -H "$JSON" -d "$(showtime 19:00)"
# 111 minutes end at 20:51; the theater then needs its 15-minute cleaning gap.
call 409 POST /api/movies/showtimes -H "Authorization: Bearer $ADMIN" -H "$JSON" -d "$(showtime 21:00)"
py '{"type": d["type"], "conflicting_showtime_id": d["conflicting_showtime_id"]}'
call 201 POST /api/movies/showtimes -H "Authorization: Bearer $ADMIN" -H "$JSON" -d "$(showtime 21:06)"
call 409 DELETE "/api/movies/movies/$MOVIE" -H "Authorization: Bearer $ADMIN"
py '{"type": d["type"], "future_showtimes": d["future_showtimes"]}'
call 403 DELETE "/api/movies/movies/$MOVIE" -H "Authorization: Bearer $ALICE"
call 401 DELETE "/api/movies/movies/$MOVIE"

step "Booking seats, all or nothing"
register bob
register carol
token "bob-$RUN" "$PASSWORD"
BOB=$(py 'd["access_token"]')
token "carol-$RUN" "$PASSWORD"
CAROL=$(py 'd["access_token"]')
book() { # token label... -> POST /api/bookings/book for those seats of $SHOW
  local bearer=$1 expected=$2
  shift 2
  call "$expected" POST /api/bookings/book -H "Authorization: Bearer $bearer" -H "$JSON" \
    -d "{\"showtime_id\": \"$SHOW\", \"seat_ids\": $(seat_ids "$@")}"
}

echo "bob books $A and $B"
book "$BOB" 201 "$A" "$B"
BOBS=$(py 'd["id"]')
py '{k: d[k] for k in ("status", "amount_cents", "currency", "expires_at")}'
echo "carol asks for $B and $C: $B is held, so nothing is booked"
book "$CAROL" 409 "$B" "$C"
expect "$(py 'd["unavailable_seat_ids"]')" "$(seat_ids "$B")" "unavailable_seat_ids"
call 200 GET "/api/movies/showtimes/$SHOW/seats"
py '[s["row"] + str(s["number"]) + " " + s["status"] for s in d["seats"] if s["status"] != "available"]'

call 200 GET /api/bookings/bookings -H "Authorization: Bearer $BOB"
expect "$(py 'd["total"]')" 1 "bob's bookings"
call 404 GET "/api/bookings/bookings/$BOBS" -H "Authorization: Bearer $CAROL"
call 422 POST /api/bookings/book -H "Authorization: Bearer $CAROL" -H "$JSON" \
  -d "{\"showtime_id\": \"$SHOW\", \"seat_ids\": []}"
py 'd["errors"]'

echo "bob cancels: his seats are free at once"
call 200 POST "/api/bookings/bookings/$BOBS/cancel" -H "Authorization: Bearer $BOB"
expect "$(py 'd["status"]')" cancelled "status"
call 409 POST "/api/bookings/bookings/$BOBS/cancel" -H "Authorization: Bearer $BOB"
py 'd["type"]'

step "Paying"
# An Idempotency-Key names one payment attempt; sending it again replays the answer.
pay() { # token key booking card [expected]
  call "${5:-201}" POST /api/payments/pay -H "Authorization: Bearer $1" -H "$JSON" -H "Idempotency-Key: $2" \
    -d "{\"booking_id\": \"$3\", \"card_number\": \"$4\", \"card_expiry\": \"12/30\", \"card_cvc\": \"123\"}"
}
book "$CAROL" 201 "$B" "$C"
CAROLS=$(py 'd["id"]')
pay "$CAROL" "carol-$RUN" "$CAROLS" "4242 4242 4242 4242"
PAID=$(py 'd["id"]')
py '{k: d[k] for k in ("status", "amount_cents", "card_brand", "card_last4")}'
pay "$CAROL" "carol-$RUN" "$CAROLS" "4242 4242 4242 4242"
expect "$(py 'd["id"]')" "$PAID" "the replayed payment"
expect "$(py 'len(d["transactions"])')" 1 "charges after a replay"

booking_status() { # token booking wanted
  call 200 GET "/api/bookings/bookings/$2" -H "Authorization: Bearer $1" && [[ "$(py 'd["status"]')" == "$3" ]]
}
echo "payment.completed confirms the booking"
until_true 10 booking_status "$CAROL" "$CAROLS" confirmed
call 200 GET "/api/movies/showtimes/$SHOW/seats"
py '[s["row"] + str(s["number"]) + " " + s["status"] for s in d["seats"] if s["status"] != "available"]'

pay "$CAROL" "carol-$RUN" "$CAROLS" 5555555555554444 422
py 'd["detail"]'
pay "$CAROL" "carol-$RUN-again" "$CAROLS" 4242424242424242 409
py 'd["type"]'
call 400 POST /api/payments/pay -H "Authorization: Bearer $CAROL" -H "$JSON" \
  -d "{\"booking_id\": \"$CAROLS\", \"card_number\": \"4242424242424242\", \"card_expiry\": \"12/30\", \"card_cvc\": \"123\"}"
pay "$CAROL" "carol-$RUN-typo" "$CAROLS" 4242424242424241 422
py '[e["field"] for e in d["errors"]]'

echo "a declined card is a failed payment (201); dave pays again with another card and key"
register dave
token "dave-$RUN" "$PASSWORD"
DAVE=$(py 'd["access_token"]')
book "$DAVE" 201 "$A"
DAVES=$(py 'd["id"]')
pay "$DAVE" "dave-$RUN-1" "$DAVES" 4000000000000002
py '{k: d[k] for k in ("status", "failure_reason")}'
pay "$DAVE" "dave-$RUN-2" "$DAVES" 5555-5555-5555-4444
DAVEPAID=$(py 'd["id"]')
py '{k: d[k] for k in ("status", "card_brand", "card_last4")}'
call 200 GET "/api/payments/payments?booking_id=$DAVES" -H "Authorization: Bearer $DAVE"
py '[p["status"] for p in d["items"]]'

echo "cancelling a paid booking refunds it, shortly after the cancel answers"
call 200 POST "/api/bookings/bookings/$CAROLS/cancel" -H "Authorization: Bearer $CAROL"
payment_status() { # token payment wanted
  call 200 GET "/api/payments/payments/$2" -H "Authorization: Bearer $1" && [[ "$(py 'd["status"]')" == "$3" ]]
}
until_true 10 payment_status "$CAROL" "$PAID" refunded
call 200 GET "/api/payments/payments/$PAID" -H "Authorization: Bearer $CAROL"
py '[(t["type"], t["amount_cents"], t["status"]) for t in d["transactions"]]'

echo "an admin refunds a payment; the booking stays confirmed"
until_true 10 booking_status "$DAVE" "$DAVES" confirmed
call 403 POST "/api/payments/payments/$DAVEPAID/refund" -H "Authorization: Bearer $DAVE"
call 200 POST "/api/payments/payments/$DAVEPAID/refund" -H "Authorization: Bearer $ADMIN"
expect "$(py 'd["status"]')" refunded "status"
call 409 POST "/api/payments/payments/$DAVEPAID/refund" -H "Authorization: Bearer $ADMIN"
call 404 GET "/api/payments/payments/$DAVEPAID" -H "Authorization: Bearer $CAROL"

step "Notifications"
# Every step of a booking and its payment becomes an email, written and sent by a worker
# moments after the event.
all_sent() { # token count
  call 200 GET /api/notifications/notifications -H "Authorization: Bearer $1" &&
    [[ "$(py 'len([n for n in d["items"] if n["status"] == "sent"])')" == "$2" ]]
}
until_true 20 all_sent "$CAROL" 4
call 200 GET /api/notifications/notifications -H "Authorization: Bearer $CAROL"
py '[(n["kind"], n["subject"]) for n in d["items"]]'
until_true 20 all_sent "$DAVE" 4
call 200 GET /api/notifications/notifications -H "Authorization: Bearer $DAVE"
py 'sorted(n["kind"] for n in d["items"])'
call 401 GET /api/notifications/notifications

step "Operations"
BASE_URL=$OPS_URL call 200 GET /health/ready
py 'd["checks"]'
BASE_URL=$OPS_URL call 200 GET /metrics
printf '%s\n' "$BODY" | grep -E '^(bookings_total|payments_total|notification_deliveries_total)' || true
call 200 GET /api/openapi.json
py 'len(d["paths"])'

printf '\nwalkthrough: every step answered as expected\n'
