#!/usr/bin/env bash
# Fuzzes the real binary through its OpenAPI document with schemathesis, as an admin and as a
# customer, and fails on any finding: a server error, a dropped connection, an answer the
# document does not declare (status, content type, schema), an error that is not
# problem+json.
#
#   tests/fuzz/run.sh sqlite      the single binary with its defaults (SQLite, in memory)
#   tests/fuzz/run.sh postgres    PostgreSQL + Redis + RabbitMQ, from BOXOFFICE_TEST_DATABASE_URL,
#                                 BOXOFFICE_TEST_REDIS_URL and BOXOFFICE_TEST_AMQP_URL (.ci/run sets them)
#
# FUZZ_MAX_TIME (seconds, default 75) bounds each of the two runs; FUZZ_MAX_EXAMPLES (default
# 100) the cases per operation and phase. The binary is the debug build the tests use (built
# the way `cargo nextest run --workspace` builds it, so after the tests this builds nothing).
#
# Every check runs but positive_data_acceptance: it expects any schema-valid request to
# succeed, and the document describes shapes, not the state and rules behind them (a random
# showtime id is a 404, an empty seat list a 422, a made-up refresh token a 401).
set -euo pipefail
cd "$(dirname "$0")/../.."

backend="${1:?usage: tests/fuzz/run.sh sqlite|postgres}"
SCHEMATHESIS_VERSION=4.32.5
MAX_TIME="${FUZZ_MAX_TIME:-75}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-100}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/boxoffice-target}"

# schemathesis in a virtualenv of its own, pinned (a system Python may be externally managed).
venv="${FUZZ_VENV:-$HOME/.cache/boxoffice-schemathesis-$SCHEMATHESIS_VERSION}"
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo test --no-run --workspace --quiet 2>/dev/null

work=$(mktemp -d)
server=
schemas=
cleanup() {
  if [[ -n "$server" ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [[ -n "$schemas" ]]; then
    for s in $schemas; do psql "$BOXOFFICE_TEST_DATABASE_URL" -qc "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

unique="fuzz_$(date +%s)_$$"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
env=(
  BOXOFFICE__DATA_DIR="$work/data"
  BOXOFFICE__LOG__FILTER=warn
  BOXOFFICE__AUTH__ADMIN_EMAIL=fuzz-admin@example.com
  BOXOFFICE__AUTH__ADMIN_PASSWORD="fuzz admin password"
  # The fuzzer is one client sending fast: the per-client budget would answer it 429 (a
  # declared answer, but one that hides the routes behind it).
  BOXOFFICE__SERVER__CLIENT_BUDGET_PER_MINUTE=0
  BOXOFFICE__AUTH__ARGON2_MEMORY_KIB=1024
  BOXOFFICE__AUTH__ARGON2_ITERATIONS=1
  BOXOFFICE__DEMO__SEED=true
)
case "$backend" in
  sqlite) ;;
  postgres)
    : "${BOXOFFICE_TEST_DATABASE_URL:?needs BOXOFFICE_TEST_DATABASE_URL}"
    : "${BOXOFFICE_TEST_REDIS_URL:?needs BOXOFFICE_TEST_REDIS_URL}"
    : "${BOXOFFICE_TEST_AMQP_URL:?needs BOXOFFICE_TEST_AMQP_URL}"
    schemas=$(printf "${unique}_%s " auth movie booking payment notification)
    env+=(
      BOXOFFICE__DATABASE__URL="$BOXOFFICE_TEST_DATABASE_URL"
      BOXOFFICE__DATABASE__SCHEMA_PREFIX="${unique}_"
      BOXOFFICE__REDIS__URL="$BOXOFFICE_TEST_REDIS_URL"
      BOXOFFICE__REDIS__KEY_PREFIX="$unique:"
      BOXOFFICE__EVENTS__AMQP_URL="$BOXOFFICE_TEST_AMQP_URL"
      BOXOFFICE__EVENTS__EXCHANGE="$unique"
      BOXOFFICE__EVENTS__QUEUE_PREFIX="$unique."
    )
    ;;
  *) echo "unknown backend $backend: sqlite or postgres" >&2; exit 2 ;;
esac

env "${env[@]}" "$CARGO_TARGET_DIR/debug/boxoffice" serve --bind "127.0.0.1:$port" 2>"$work/server.log" &
server=$!
for _ in $(seq 300); do
  curl -fsS "$base/health/ready" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$base/health/ready" >/dev/null

token() { # username password
  curl -fsS -X POST "$base/api/auth/token" --data-urlencode "username=$1" --data-urlencode "password=$2" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
curl -fsS -X POST "$base/api/auth/register" -H 'content-type: application/json' \
  -d '{"email":"fuzz@example.com","username":"fuzz","password":"fuzz password"}' >/dev/null
admin=$(token fuzz-admin@example.com "fuzz admin password")
customer=$(token fuzz "fuzz password")

status=0
for role in admin customer; do
  echo "== schemathesis on $backend as $role (at most ${MAX_TIME}s)"
  bearer=$admin
  [[ $role == customer ]] && bearer=$customer
  # From the scratch dir: schemathesis keeps a cache of past failures in its working directory.
  # The seat-state stream is left out: it answers for as long as the client listens, which a
  # fuzzer takes for a hang (tests/api/site.rs covers it).
  (cd "$work" && "$venv/bin/st" run "$base/api/openapi.json" \
    -H "Authorization: Bearer $bearer" \
    --checks all --exclude-checks positive_data_acceptance \
    --exclude-path-regex 'seat-states/stream$' \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$MAX_TIME" \
    --seed 11 \
    --output-truncate true) || status=1
done

# A panic answered by the guard is a 500 the checks above already fail on; a dropped
# connection leaves no answer, so look for panics in the log too.
if grep -q "panicked at" "$work/server.log"; then
  echo "FAIL: the server panicked:" >&2
  grep -A3 "panicked at" "$work/server.log" >&2
  status=1
fi
exit "$status"
