#!/usr/bin/env bash
# The files the Secrets of an overlay are generated from (kustomize secretGenerator), owner-only,
# never committed (.gitignore), made once and kept:
#
#   k8s/base/secrets/       services_token, auth_signing_key.pem, payment_fingerprint_key
#                           (deploy/secrets.sh: the same for every replica)
#   k8s/overlays/split/secrets/   database_url, redis_url, amqp_url, smtp_password: from
#                           DATABASE_URL, REDIS_URL, AMQP_URL, SMTP_PASSWORD
#   k8s/overlays/dev/secrets/     the same for the in-cluster servers, with generated passwords
#
#   DATABASE_URL=postgres://... REDIS_URL=redis://... AMQP_URL=amqp://... SMTP_PASSWORD=... \
#     k8s/secrets.sh split
#   k8s/secrets.sh dev
#   PLACEHOLDERS=1 k8s/secrets.sh split     # CI: placeholder URLs, to render and validate only
set -euo pipefail
cd "$(dirname "$0")"
overlay=${1:?usage: k8s/secrets.sh split|dev|monolith}
umask 077
../deploy/secrets.sh base/secrets
[[ "$overlay" == monolith ]] && exit 0
dir=overlays/$overlay/secrets
mkdir -p "$dir"

put() { # file value: written once, without a trailing newline
  [[ -s $dir/$1 ]] || printf '%s' "$2" >"$dir/$1"
}
value() { # variable: its value, or a placeholder with PLACEHOLDERS=1
  if [[ -n "${!1:-}" ]]; then printf '%s' "${!1}"
  elif [[ "${PLACEHOLDERS:-}" == 1 ]]; then printf 'placeholder-%s' "$1"
  else echo "k8s/secrets.sh: set $1 (or PLACEHOLDERS=1 to render only)" >&2; exit 1
  fi
}

case $overlay in
  split)
    put database_url "$(value DATABASE_URL)"
    put redis_url "$(value REDIS_URL)"
    put amqp_url "$(value AMQP_URL)"
    put smtp_password "${SMTP_PASSWORD:-$(value SMTP_PASSWORD)}"
    ;;
  dev)
    put postgres_password "$(openssl rand -hex 16)"
    put rabbitmq_password "$(openssl rand -hex 16)"
    put database_url "postgres://boxoffice:$(cat "$dir/postgres_password")@postgres:5432/boxoffice"
    put rabbitmq.conf "default_user = boxoffice
default_pass = $(cat "$dir/rabbitmq_password")
"
    put redis_url "redis://redis:6379/0"
    put amqp_url "amqp://boxoffice:$(cat "$dir/rabbitmq_password")@rabbitmq:5672/%2f"
    put smtp_password ""
    ;;
  *) echo "k8s/secrets.sh: unknown overlay $overlay" >&2; exit 1 ;;
esac
