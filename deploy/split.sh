#!/usr/bin/env bash
# deploy/split.sh up|down|purge|status|start P|stop P|kill P: the split deployment on this
# machine, every process of one layout of deploy/topology plus the nginx gateway in front, on
# loopback, against the local PostgreSQL, Redis and RabbitMQ. docs/operations.md ("The split
# deployment on one machine") is the guide; the variables:
#
#   LAYOUT        split (one process per module, two booking replicas) or mixed (default split)
#   BOXOFFICE_BIN the binary (default target/release/boxoffice if built, else
#                 ${CARGO_TARGET_DIR:-target}/debug/boxoffice; `cargo build` if neither exists)
#   STATE_DIR     pids, logs, secrets, data, nginx files (default .split/ at the repository root)
#   BASE_PORT     a process listens on its topology port - 8000 + BASE_PORT; the gateway on
#                 BASE_PORT + 80 (HTTP), BASE_PORT + 443 (HTTPS) and, for the modules' calls to
#                 each other, BASE_PORT + 81 (default 8000)
#   SPLIT_NAME    the PostgreSQL database, Redis key prefix, RabbitMQ exchange and queue
#                 prefix of this deployment (default boxoffice_split; a-z, 0-9, _)
#   DATABASE_URL  the PostgreSQL server, without a database
#                 (default postgres://postgres@127.0.0.1:5432)
#   REDIS_URL     default redis://127.0.0.1:6379/0
#   AMQP_URL      the broker with its virtual host (default amqp://guest:guest@127.0.0.1:5672/%2f)
#   ADMIN_EMAIL, ADMIN_PASSWORD  an admin account made by `up` (boxoffice admin create)
#   DEMO=1        `up` seeds the demo catalog (boxoffice seed --demo)
#   EMAIL         notification's sender: file (default: <STATE_DIR>/data/<process>/outbox),
#                 log or smtp
#   TLS_CERT, TLS_KEY  the gateway's certificate (default: self-signed, deploy/gateway/make-cert.sh)
#   READY_TIMEOUT seconds `up` and `start` wait for readiness (default 120)
#
# `up` prints GATEWAY_URL=http://127.0.0.1:<port> as its last line of stdout (progress goes to
# stderr). `down` stops what `up` started and keeps the data; `purge` also drops the database
# and the state dir. `start`, `stop` (SIGTERM, then SIGKILL) and `kill` (SIGKILL) act on one
# process of the layout, or `gateway`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAYOUT=${LAYOUT:-split}
STATE_DIR=${STATE_DIR:-$ROOT/.split}
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
BASE_PORT=${BASE_PORT:-8000}
SPLIT_NAME=${SPLIT_NAME:-boxoffice_split}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
EMAIL=${EMAIL:-file}
READY_TIMEOUT=${READY_TIMEOUT:-120}
GATEWAY_PORT=$((BASE_PORT + 80))
GATEWAY_TLS_PORT=$((BASE_PORT + 443))
INTERNAL_PORT=$((BASE_PORT + 81))
MODULES=(auth movie booking payment notification)

say() { printf 'split: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[[ "$SPLIT_NAME" =~ ^[a-z][a-z0-9_]*$ ]] || die "SPLIT_NAME must be a-z, 0-9 and _ (got $SPLIT_NAME)"
[[ "$BASE_PORT" =~ ^[0-9]+$ ]] || die "BASE_PORT must be a number"

# The layout's processes, one "name modules port profile" line each, in topology order (`down`
# stops them in reverse).
TOPOLOGY=$(awk -v layout="$LAYOUT" '$1 == layout { print $2, $3, $4, $5 }' "$ROOT/deploy/topology")
[[ -n "$TOPOLOGY" ]] || die "no layout '$LAYOUT' in deploy/topology"
PROCESSES=()
declare -A SERVES PORT PROFILE
while read -r name modules port profile; do
  PROCESSES+=("$name")
  SERVES[$name]=$modules
  PORT[$name]=$((port - 8000 + BASE_PORT))
  PROFILE[$name]=$profile
done <<<"$TOPOLOGY"

# The processes serving $1, in topology order.
servers_of() {
  local name
  for name in "${PROCESSES[@]}"; do
    if [[ ",${SERVES[$name]}," == *",$1,"* ]]; then printf '%s\n' "$name"; fi
  done
}

pid_file() { printf '%s/pids/%s.pid' "$STATE_DIR" "$1"; }
log_file() { printf '%s/logs/%s.log' "$STATE_DIR" "$1"; }
pid_of() { [[ -s "$(pid_file "$1")" ]] && cat "$(pid_file "$1")"; }
# A process that exited but was not reaped yet (a zombie) counts as gone.
running() { kill -0 "$1" 2>/dev/null && [[ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]]; }
alive() { local pid; pid=$(pid_of "$1") && running "$pid"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
known() {
  [[ "$1" == gateway || -n "${SERVES[$1]:-}" ]] || die "no process '$1' in layout $LAYOUT (${PROCESSES[*]} gateway)"
}

# --- the deployment's backing services and secrets -------------------------------------------

# Fails unless command $1 is installed (Debian package $2).
require() { command -v "$1" >/dev/null || die "$1 is not installed (apt-get install $2)"; }

nginx_bin() {
  command -v nginx || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || die "nginx is not installed (apt-get install nginx)"
}

boxoffice_bin() {
  if [[ -n "${BOXOFFICE_BIN:-}" ]]; then
    [[ -x "$BOXOFFICE_BIN" ]] || die "BOXOFFICE_BIN=$BOXOFFICE_BIN is not an executable"
    echo "$BOXOFFICE_BIN"
    return
  fi
  local debug="${CARGO_TARGET_DIR:-target}/debug/boxoffice"
  [[ "$debug" == /* ]] || debug="$ROOT/$debug"
  if [[ -x "$ROOT/target/release/boxoffice" ]]; then
    echo "$ROOT/target/release/boxoffice"
  else
    if [[ ! -x "$debug" ]]; then
      say "no boxoffice binary: running cargo build (a first build takes minutes)"
      (cd "$ROOT" && cargo build --quiet >&2)
    fi
    echo "$debug"
  fi
}

# The database of this deployment, created once (the modules make their schemas in it).
ensure_database() {
  require psql postgresql-client
  local server="$DATABASE_URL/postgres"
  if [[ -z "$(psql "$server" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$SPLIT_NAME'")" ]]; then
    say "creating database $SPLIT_NAME"
    psql "$server" -qc "CREATE DATABASE $SPLIT_NAME" >/dev/null
  fi
}

# Generated once by deploy/secrets.sh, kept across up and down: a restarted deployment keeps
# its tokens valid and recognises its payments' idempotency keys.
ensure_secrets() {
  "$ROOT/deploy/secrets.sh" "$STATE_DIR/secrets"
}

# Sets VARS to the environment of process $1 (NAME=value, for `export`): its profile, loopback
# port, data directory, the shared services under this deployment's names, the other modules
# behind the gateway's internal listener (which balances replicas and routes /internal), and
# the secrets as files (never in the environment or on a command line).
process_env() {
  local name=$1 module
  local secrets="$STATE_DIR/secrets"
  VARS=(
    "BOXOFFICE_PROFILE=${PROFILE[$name]}"
    "BOXOFFICE_CONFIG_DIR=$ROOT/config"
    "BOXOFFICE__SERVER__BIND=127.0.0.1:${PORT[$name]}"
    "BOXOFFICE__DATA_DIR=$STATE_DIR/data/$name"
    "BOXOFFICE__DATABASE__URL=$DATABASE_URL/$SPLIT_NAME"
    "BOXOFFICE__REDIS__URL=$REDIS_URL"
    "BOXOFFICE__REDIS__KEY_PREFIX=$SPLIT_NAME:"
    "BOXOFFICE__EVENTS__AMQP_URL=$AMQP_URL"
    "BOXOFFICE__EVENTS__EXCHANGE=$SPLIT_NAME.events"
    "BOXOFFICE__EVENTS__QUEUE_PREFIX=$SPLIT_NAME."
    "BOXOFFICE__NOTIFICATION__EMAIL=$EMAIL"
    "BOXOFFICE__SERVICES__TOKEN_FILE=$secrets/services_token"
    "BOXOFFICE__AUTH__SIGNING_KEY_FILE=$secrets/auth_signing_key.pem"
    "BOXOFFICE__PAYMENT__FINGERPRINT_KEY_FILE=$secrets/payment_fingerprint_key"
  )
  for module in "${MODULES[@]}"; do
    VARS+=("BOXOFFICE__SERVICES__${module^^}=http://127.0.0.1:$INTERNAL_PORT")
  done
}

# Runs the boxoffice command "$@" (a CLI subcommand) with the settings of process $1.
with_process_env() {
  local bin
  bin=$(boxoffice_bin)
  process_env "$1"
  shift
  (
    export "${VARS[@]}" BOXOFFICE__LOG__FILTER=warn
    exec "$bin" "$@"
  )
}

# --- nginx ---------------------------------------------------------------------------------

write_nginx_conf() {
  local dir="$STATE_DIR/nginx" module name
  mkdir -p "$dir/tmp"
  local cert key
  if [[ -n "${TLS_CERT:-}" ]]; then
    cert=$TLS_CERT
    key=${TLS_KEY:?TLS_KEY must be set with TLS_CERT}
  else
    "$ROOT/deploy/gateway/make-cert.sh" "$STATE_DIR/tls"
    cert=$STATE_DIR/tls/cert.pem key=$STATE_DIR/tls/key.pem
  fi
  {
    echo "# Made by deploy/split.sh from deploy/topology (layout $LAYOUT): each module's processes."
    for module in "${MODULES[@]}"; do
      echo "upstream $module {"
      for name in $(servers_of "$module"); do
        # Passive health checks: two failed tries within 10 s take a replica out for 10 s.
        echo "    server 127.0.0.1:${PORT[$name]} max_fails=2 fail_timeout=10s;"
      done
      # Idle connections are closed before the services' own 5 s keep-alive does, so a request
      # never goes out on a connection the service is closing.
      echo "    keepalive 16;"
      echo "    keepalive_timeout 4s;"
      echo "}"
    done
  } >"$dir/upstreams.conf"
  cat >"$dir/nginx.conf" <<EOF
# Made by deploy/split.sh: the gateway of the split deployment in $STATE_DIR, on loopback.
daemon off;
worker_processes 1;
# As many open files as connections (a shell's default limit is 1,024).
worker_rlimit_nofile 65536;
pid $dir/nginx.pid;
error_log $STATE_DIR/logs/gateway.log warn;
events {
    # Each proxied request holds two connections (client and upstream), and the modules'
    # calls to each other pass here too (two more): 1024 ran out under a 256-buyer flash sale,
    # 8192 under 2,000 buyers at once (503s: booking's calls to movie were closed).
    worker_connections 32768;
}
http {
    client_body_temp_path $dir/tmp/client;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    include $dir/upstreams.conf;
    include $ROOT/deploy/gateway/gateway.conf;
    access_log $STATE_DIR/logs/gateway.access.log boxoffice_gateway;
    server {
        listen 127.0.0.1:$GATEWAY_PORT;
        include $ROOT/deploy/gateway/server.conf;
        include $ROOT/deploy/gateway/routes.conf;
    }
    server {
        listen 127.0.0.1:$GATEWAY_TLS_PORT ssl;
        ssl_certificate $cert;
        ssl_certificate_key $key;
        include $ROOT/deploy/gateway/server.conf;
        include $ROOT/deploy/gateway/routes.conf;
    }
    server {
        listen 127.0.0.1:$INTERNAL_PORT;
        include $ROOT/deploy/gateway/server.conf;
        include $ROOT/deploy/gateway/internal.conf;
    }
}
EOF
  "$(nginx_bin)" -t -q -p "$dir" -e "$STATE_DIR/logs/gateway.log" -c "$dir/nginx.conf" \
    || die "nginx refuses $dir/nginx.conf"
}

# --- processes -----------------------------------------------------------------------------

# Starts process $1 in the background, in a session of its own (a Ctrl-C or a hang-up of the
# shell that ran `up` does not reach it; `down` stops it), logging to its log file.
launch() {
  local name=$1 port cmd=()
  if alive "$name"; then
    say "$name is already running (pid $(pid_of "$name"))"
    return
  fi
  if [[ "$name" == gateway ]]; then
    port=$GATEWAY_PORT
    cmd=("$(nginx_bin)" -p "$STATE_DIR/nginx" -e "$(log_file gateway)" -c "$STATE_DIR/nginx/nginx.conf")
  else
    port=${PORT[$name]}
    process_env "$name"
    cmd=("$(boxoffice_bin)" serve)
  fi
  port_open "$port" && die "port $port (for $name) is taken: another deployment? set BASE_PORT"
  rm -f "$(pid_file "$name")"
  (
    [[ "$name" == gateway ]] || export "${VARS[@]}"
    # The pid is written by the process itself just before it becomes the command, whether or
    # not setsid had to fork.
    # shellcheck disable=SC2016 # $$ and $@ are the inner shell's.
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$(pid_file "$name")" "${cmd[@]}" \
      </dev/null >>"$(log_file "$name")" 2>&1 &
  )
  local i
  for ((i = 0; i < 50; i++)); do [[ -s "$(pid_file "$name")" ]] && break; sleep 0.1; done
  say "started $name (pid $(pid_of "$name"), port $port)"
}

# Whether process $1 answers: a service's /health/ready, the gateway's routing through to a
# service (the API document, which any process answers).
ready() {
  if [[ "$1" == gateway ]]; then
    curl -fs -o /dev/null --max-time 3 "http://127.0.0.1:$GATEWAY_PORT/api/openapi.json"
  else
    curl -fs -o /dev/null --max-time 3 "http://127.0.0.1:${PORT[$1]}/health/ready"
  fi
}

# Waits until every process named answers; a process that exits or stays unready past
# READY_TIMEOUT fails the wait, with the tail of its log.
wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT)) name pending
  while :; do
    pending=()
    for name in "$@"; do
      if ! alive "$name"; then
        say "$name exited; the end of $(log_file "$name"):"
        tail -n 30 "$(log_file "$name")" >&2
        return 1
      fi
      ready "$name" || pending+=("$name")
    done
    ((${#pending[@]} == 0)) && return 0
    if ((SECONDS >= deadline)); then
      for name in "${pending[@]}"; do
        say "$name is not ready after ${READY_TIMEOUT}s; the end of $(log_file "$name"):"
        tail -n 30 "$(log_file "$name")" >&2
      done
      return 1
    fi
    sleep 0.2
  done
}

# Stops process $1 with signal $2 (TERM: a graceful stop, SIGKILL after 30 s); idempotent. The
# signal goes to its whole process group (its session, from launch): nginx's workers die with
# their master even on SIGKILL.
halt() {
  local name=$1 signal=$2 pid i
  if ! alive "$name"; then
    rm -f "$(pid_file "$name")"
    return
  fi
  pid=$(pid_of "$name")
  kill "-$signal" -- "-$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    say "$name (pid $pid) did not stop in 30 s: SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
    while running "$pid"; do sleep 0.1; done
  fi
  rm -f "$(pid_file "$name")"
  say "stopped $name (pid $pid, SIG$signal)"
}

# --- commands ------------------------------------------------------------------------------

up() {
  require openssl openssl
  require curl curl
  mkdir -p "$STATE_DIR/pids" "$STATE_DIR/logs" "$STATE_DIR/data"
  # The gateway's workers may run as another user than its master (nginx as root): they need
  # to reach its temporary files.
  chmod 755 "$STATE_DIR"
  boxoffice_bin >/dev/null
  ensure_database
  ensure_secrets
  write_nginx_conf
  # The gateway first: the processes reach each other through it. They start together:
  # replicas of a module take turns migrating its schema (an advisory lock per schema), and
  # every process declares every queue before publishing.
  local name
  for name in gateway "${PROCESSES[@]}"; do launch "$name"; done
  wait_ready "${PROCESSES[@]}" gateway \
    || die "the deployment did not come up; deploy/split.sh down stops what started"
  if [[ -n "${ADMIN_EMAIL:-}" ]]; then
    local auth out
    auth=$(servers_of auth | head -n1)
    # The password travels by environment, out of `ps`.
    local password=${ADMIN_PASSWORD:?ADMIN_PASSWORD must be set with ADMIN_EMAIL}
    if out=$(BOXOFFICE_ADMIN_PASSWORD=$password with_process_env "$auth" admin create --email "$ADMIN_EMAIL" 2>&1); then
      say "admin $ADMIN_EMAIL created"
    elif [[ "$out" == *"email already registered"* ]]; then
      say "admin $ADMIN_EMAIL exists already"
    else
      printf '%s\n' "$out" >&2
      die "creating the admin failed"
    fi
  fi
  if [[ "${DEMO:-0}" == 1 ]]; then
    with_process_env "$(servers_of movie | head -n1)" seed --demo >&2
  fi
  say "logs in $STATE_DIR/logs; stop with deploy/split.sh down"
  echo "GATEWAY_HTTPS_URL=https://127.0.0.1:$GATEWAY_TLS_PORT"
  echo "GATEWAY_URL=http://127.0.0.1:$GATEWAY_PORT"
}

down() {
  local i
  halt gateway TERM
  for ((i = ${#PROCESSES[@]} - 1; i >= 0; i--)); do halt "${PROCESSES[i]}" TERM; done
}

# `down`, then the deployment's database and state dir (secrets included) are gone: the next
# `up` starts afresh. Its Redis keys and RabbitMQ queues stay (under its SPLIT_NAME prefix).
purge() {
  down
  require psql postgresql-client
  psql "$DATABASE_URL/postgres" -qc "DROP DATABASE IF EXISTS $SPLIT_NAME WITH (FORCE)" >/dev/null
  rm -rf "$STATE_DIR"
  say "dropped database $SPLIT_NAME and $STATE_DIR"
}

status() {
  local name pid
  for name in "${PROCESSES[@]}" gateway; do
    pid=$(pid_of "$name" || echo -)
    if alive "$name"; then
      if ready "$name"; then
        printf '%-14s %-8s alive ready\n' "$name" "$pid"
      else
        printf '%-14s %-8s alive not-ready\n' "$name" "$pid"
      fi
    else
      printf '%-14s %-8s dead  not-ready\n' "$name" "$pid"
    fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  purge) purge ;;
  status) status ;;
  start)
    known "${2:?usage: split.sh start PROCESS}"
    mkdir -p "$STATE_DIR/pids" "$STATE_DIR/logs"
    launch "$2"
    wait_ready "$2"
    ;;
  stop) known "${2:?usage: split.sh stop PROCESS}" && halt "$2" TERM ;;
  # What a process is given, one NAME=value a line (secrets are file names): for the compose
  # file's test (tests/api/deploy.rs) and for an operator's questions.
  env) known "${2:?usage: split.sh env PROCESS}" && process_env "$2" && printf '%s\n' "${VARS[@]}" ;;
  kill) known "${2:?usage: split.sh kill PROCESS}" && halt "$2" KILL ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
