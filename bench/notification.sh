#!/usr/bin/env bash
# Load report for notification: every request books one distinct seat (see bench/booking.sh),
# so each makes a booking.created event that notification records (one transaction with the
# inbox record) and its delivery worker then writes (address from auth, screening from movie,
# templates) and sends. Reports the booking load, then how long the last email took to be sent
# after the load ended, and the deliveries per second over the whole run.
#
#   bash bench/notification.sh                              # the log adapter
#   EMAIL=file bash bench/notification.sh                   # the file outbox (the binary's default)
#   SMTP=1 bash bench/notification.sh                       # SMTP to aiosmtpd on loopback
#   MODULES=auth,movie,booking,payment bash bench/notification.sh   # the same load without
#                                                           # notification, to compare /book
#   DATABASE_URL=postgres://postgres@127.0.0.1/bench REDIS_URL=redis://127.0.0.1:6379/0 \
#     bash bench/notification.sh                            # PostgreSQL + Redis
#
# Server, SMTP sink and wrk share this machine's cores: compare runs on the same box. Needs
# wrk, and aiosmtpd for SMTP=1.
CONNECTIONS="${CONNECTIONS:-32}"
PORT="${PORT:-18184}"
SMTP_PORT="${SMTP_PORT:-18125}"
export BOXOFFICE__DATABASE__URL="${DATABASE_URL:-}"
export BOXOFFICE__DATABASE__SCHEMA_PREFIX="bench_$(date +%s)_"
export BOXOFFICE__DATABASE__MAX_CONNECTIONS=16
export BOXOFFICE__REDIS__URL="${REDIS_URL:-}"
export BOXOFFICE__REDIS__KEY_PREFIX="bench:$(date +%s):"
[ -n "${MODULES:-}" ] && export BOXOFFICE__MODULES="$MODULES"
# The log adapter unless asked otherwise: the figures in docs/performance.md were taken with it.
export BOXOFFICE__NOTIFICATION__EMAIL="${EMAIL:-log}"
sink=""
if [ -n "${SMTP:-}" ]; then
  # aiosmtpd's default handler prints each message it accepts, between two marker lines.
  mail_log=$(mktemp)
  python3 -u -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" >"$mail_log" &
  sink=$!
  export BOXOFFICE__NOTIFICATION__EMAIL=smtp BOXOFFICE__NOTIFICATION__SMTP__HOST=127.0.0.1
  export BOXOFFICE__NOTIFICATION__SMTP__PORT="$SMTP_PORT" BOXOFFICE__NOTIFICATION__SMTP__TLS=none
fi
source "$(dirname "$0")/common.sh"
[ -n "$sink" ] && trap 'kill "$server" "$sink" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "${cleanup_files[@]}" "$mail_log"' EXIT

write_book_lua
email=${SMTP:+smtp to the sink}
backend=${DATABASE_URL:+PostgreSQL}
echo "modules: ${MODULES:-all}, email: ${email:-$BOXOFFICE__NOTIFICATION__EMAIL}, backend: ${backend:-SQLite}"
printf '%-44s %10s %10s %10s %10s %10s\n' run req/s p50 p99 requests non-2xx
SECONDS=0
report "POST /book, one distinct seat each" "$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$book_lua" "$BASE")"
loaded=$SECONDS
metrics=$(curl -fsS "$BASE/metrics")
created=$(awk '/^bookings_total\{outcome="created"\}/ {print $2}' <<<"$metrics")
errors=$({ grep -E '^http_requests_total\{.*route="/api/bookings/book",status="5' || true; } <<<"$metrics" | awk '{s+=$2} END {print s+0}')
echo "bookings created: ${created:-0}; 5xx on /book: $errors"
[ -n "${MODULES:-}" ] && [[ ",$MODULES," != *,notification,* ]] && exit 0

sent_count() {
  curl -fsS "$BASE/metrics" | awk '/^notification_deliveries_total\{.*outcome="sent"/ {s+=$2} END {print s+0}'
}
sent=$(sent_count)
# Requests still in flight when wrk stopped may have booked since: count again at the end.
created_count() { curl -fsS "$BASE/metrics" | awk '/^bookings_total\{outcome="created"\}/ {print $2}'; }
created=$(created_count)
while [ "$sent" -lt "${created%.*}" ] && [ "$SECONDS" -lt $((loaded + 300)) ]; do
  sleep 0.5
  sent=$(sent_count)
done
total=$SECONDS
echo "emails sent: $sent of ${created%.*}, the last $((total - loaded))s after the load ended;" \
  "$((sent / (total > 0 ? total : 1))) sent/s over the ${total}s run"
[ -n "$sink" ] && echo "messages the SMTP sink received: $(grep -c '^---------- MESSAGE FOLLOWS ----------$' "$mail_log")"
exit 0
