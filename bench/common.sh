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
BOXOFFICE__LOG__FILTER=warn \
BOXOFFICE__DEMO__SEED=true \
  "$CARGO_TARGET_DIR/release/boxoffice" serve --bind "127.0.0.1:$PORT" &
server=$!
until curl -fsS "$BASE/health/ready" >/dev/null 2>&1; do sleep 0.1; done

curl -fsS -X POST "$BASE/api/auth/register" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","username":"bench","password":"bench password"}' >/dev/null
token=$(curl -fsS -X POST "$BASE/api/auth/token" -d 'username=bench&password=bench%20password' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
