#!/usr/bin/env bash
# The shared secrets of a deployment, one file each in DIR (made once, never overwritten, mode
# 0600), for every process to read through BOXOFFICE__<SECTION>__<KEY>_FILE:
#
#   services_token            services.token: modules' internal routes (48 hex characters)
#   auth_signing_key.pem      auth.signing_key: the Ed25519 key every auth replica signs with
#   payment_fingerprint_key   payment.fingerprint_key: the HMAC key every payment replica uses
#
# deploy/split.sh and deploy/compose/init.sh call it; a Kubernetes Secret holds the same files.
#   deploy/secrets.sh DIR
set -euo pipefail

dir=${1:?usage: deploy/secrets.sh DIR}
umask 077
mkdir -p "$dir"

make() {
  local file=$dir/$1
  shift
  [[ -s $file ]] && return
  "$@" >"$file.tmp"
  mv "$file.tmp" "$file"
}

make services_token openssl rand -hex 24
make auth_signing_key.pem openssl genpkey -algorithm ed25519
make payment_fingerprint_key openssl rand -hex 32
