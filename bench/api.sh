#!/usr/bin/env bash
# Load report for the single binary (demo catalog, SQLite, in-memory adapters): operations,
# auth and catalog routes, with wrk on loopback.
#
#   bash bench/api.sh            # release build, 10 s per route, 64 connections
#   DURATION=30s CONNECTIONS=128 bash bench/api.sh
#
# The server and wrk share this machine's cores, so figures are for comparing runs on the
# same box, not absolute capacity. Needs wrk (apt-get install wrk).
CONNECTIONS="${CONNECTIONS:-64}"
PORT="${PORT:-18181}"
source "$(dirname "$0")/common.sh"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
movie=$(curl -fsS "$BASE/api/movies/movies?per_page=1" | json 'd["items"][0]["id"]')
showtime=$(curl -fsS "$BASE/api/movies/showtimes?per_page=1" | json 'd["items"][0]["id"]')
grand=$(curl -fsS "$BASE/api/movies/showtimes?per_page=100" | json '[s["id"] for s in d["items"] if s["seats_total"] >= 200][0]')

lua=$(mktemp)
cleanup_files+=("$lua")
cat > "$lua" <<'LUA'
wrk.method = "POST"
wrk.body = "username=bench&password=bench%20password"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA

run() { # name, then wrk arguments
  local name=$1; shift
  local out
  out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$@")
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  printf '%-46s %12s %10s %10s %8s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
}

printf '%-46s %12s %10s %10s %8s\n' route req/s p50 p99 non-2xx
run "GET /health/live" "$BASE/health/live"
run "GET /api/auth/jwks" "$BASE/api/auth/jwks"
run "GET /api/auth/me (verify + 1 read)" -H "Authorization: Bearer $token" "$BASE/api/auth/me"
run "GET /api/movies/movies (cached)" "$BASE/api/movies/movies"
run "GET /api/movies/movies/{id} (cached)" "$BASE/api/movies/movies/$movie"
run "GET /api/movies/showtimes?movie_id (cached)" "$BASE/api/movies/showtimes?movie_id=$movie"
run "GET /api/movies/showtimes/{id} (cached)" "$BASE/api/movies/showtimes/$showtime"
run "GET .../showtimes/{id}/seats (208 seats, exact)" "$BASE/api/movies/showtimes/$grand/seats"
run "POST /api/auth/token (Argon2id)" -c8 -s "$lua" "$BASE/api/auth/token"
