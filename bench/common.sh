# Sourced by the bench scripts: build the release binary, start it on $PORT with a fresh data
# dir and the demo catalog (extra environment comes from the caller), stop it on exit, and
# register the `bench` customer whose access token ends up in $token.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/boxoffice-target}"
DURATION="${DURATION:-10s}"
BASE="http://127.0.0.1:$PORT"
cleanup_files=()

cargo build --release --quiet
data=$(mktemp -d)
cleanup_files+=("$data")
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "${cleanup_files[@]}"' EXIT
BOXOFFICE__DATA_DIR="$data" \
BOXOFFICE__SERVER__CLIENT_BUDGET_PER_MINUTE=0 \
BOXOFFICE__AUTH__LOGIN_MAX_FAILURES_PER_ACCOUNT=1000000 \
BOXOFFICE__AUTH__LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS=1000000 \
BOXOFFICE__LOG__FILTER=warn \
BOXOFFICE__DEMO__SEED=true \
  "$CARGO_TARGET_DIR/release/boxoffice" serve --bind "127.0.0.1:$PORT" &
server=$!
until curl -fsS "$BASE/health/ready" >/dev/null 2>&1; do sleep 0.1; done

curl -fsS -X POST "$BASE/api/auth/register" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","username":"bench","password":"bench password"}' >/dev/null
token=$(curl -fsS -X POST "$BASE/api/auth/token" -d 'username=bench&password=bench%20password' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

# Prints a wrk report line: name, req/s, p50, p99, requests, non-2xx.
report() { # name, wrk output
  local rps p50 p99 non2xx total
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$2")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$2")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$2")
  total=$(awk '/requests in/ {print $1}' <<<"$2")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$2")
  printf '%-44s %10s %10s %10s %10s %10s\n' "$1" "$rps" "$p50" "$p99" "$total" "${non2xx:-0}"
}

# wrk Lua that numbers requests per thread without overlap (thread i sends i+2, i+4, ...; wrk
# calls request() once per thread before the load and drops that one).
per_thread_counter='local threads = {}
function setup(thread) thread:set("id", #threads); table.insert(threads, thread) end
function init(args) n = id end'

# Sets $seats_lua (every (showtime, seat) of the demo catalog as a Lua table), $seat_count,
# and $book_lua: a wrk script that books one distinct seat per request, cycling through them.
write_book_lua() {
  seats_lua=$(mktemp --suffix .lua)
  cleanup_files+=("$seats_lua")
  python3 - "$BASE" > "$seats_lua" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
get = lambda p: json.load(urllib.request.urlopen(base + p))
page, pairs = 1, []
while True:
    shows = get(f"/api/movies/showtimes?per_page=100&page={page}")
    for s in shows["items"]:
        pairs += [(s["id"], seat["id"]) for seat in get(f"/api/movies/showtimes/{s['id']}/pricing")["seats"]]
    if page * 100 >= shows["total"]:
        break
    page += 1
print("seat_pairs = {")
print("\n".join(f'  {{"{a}", "{b}"}},' for a, b in pairs))
print("}")
PY
  seat_count=$(grep -c '^  {' "$seats_lua")
  book_lua=$(mktemp --suffix .lua)
  cleanup_files+=("$book_lua")
  cat > "$book_lua" <<LUA
dofile("$seats_lua")
$per_thread_counter
function request()
  n = n + 2
  local p = seat_pairs[(n % #seat_pairs) + 1]
  local body = '{"showtime_id":"' .. p[1] .. '","seat_ids":["' .. p[2] .. '"]}'
  return wrk.format("POST", "/api/bookings/book", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer $token"}, body)
end
LUA
}
