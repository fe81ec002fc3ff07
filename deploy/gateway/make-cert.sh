#!/usr/bin/env bash
# deploy/gateway/make-cert.sh DIR: a self-signed certificate for the gateway's TLS port on
# this machine (localhost, 127.0.0.1, ::1), valid 30 days: DIR/cert.pem (a client trusts it
# with e.g. `curl --cacert DIR/cert.pem`) and DIR/key.pem (owner-only). Kept if both exist.
# For real certificates, point ssl_certificate and ssl_certificate_key at other files
# (deploy/split.sh: TLS_CERT and TLS_KEY).
set -euo pipefail

dir=${1:?usage: make-cert.sh DIR}
mkdir -p "$dir"
if [[ -s "$dir/cert.pem" && -s "$dir/key.pem" ]]; then
  exit 0
fi
(
  umask 077
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
)
chmod 644 "$dir/cert.pem"
