#!/usr/bin/env bash
# The secrets of the compose deployment, once, into deploy/compose/secrets/ (git-ignored):
# the application's shared secrets as deploy/split.sh makes them (deploy/secrets.sh), the
# PostgreSQL, RabbitMQ and Grafana passwords and the URLs built from them, and a self-signed TLS
# certificate for the gateway (replace secrets/tls/{cert,key}.pem with real ones).
#   deploy/compose/init.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=$here/secrets
"$here/../secrets.sh" "$dir"
umask 077

once() {
  local file=$dir/$1
  [[ -s $file ]] || printf '%s' "$2" >"$file"
}

once postgres_password "$(openssl rand -hex 24)"
once rabbitmq_password "$(openssl rand -hex 24)"
once grafana_admin_password "$(openssl rand -hex 16)"
once database_url "postgres://boxoffice:$(cat "$dir/postgres_password")@postgres:5432/boxoffice"
once amqp_url "amqp://boxoffice:$(cat "$dir/rabbitmq_password")@rabbitmq:5672/%2f"
once rabbitmq.conf "default_user = boxoffice
default_pass = $(cat "$dir/rabbitmq_password")
"
[[ -s $dir/tls/cert.pem ]] || "$here/../gateway/make-cert.sh" "$dir/tls"
# The containers run as other users than the one that ran this: the files are readable by
# all, the directory (0700) by this user only. Compose mounts each file on its own.
chmod 0700 "$dir"
find "$dir" -type f -exec chmod 0644 {} +
echo "secrets in $dir"
