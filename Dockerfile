# boxoffice: one image for every deployment mode.
#
#   docker build -t boxoffice .
#
# The image runs `boxoffice serve` with BOXOFFICE_PROFILE=production (config/production.toml:
# JSON logs, listen on 0.0.0.0:8080) as uid 10001, with its data in /var/lib/boxoffice.
# The modules a container serves are chosen at run time, by environment or by arguments:
#
#   # the single binary: every compiled-in module, SQLite files in the volume
#   docker run -p 8080:8080 -v boxoffice-data:/var/lib/boxoffice boxoffice
#   # the auth service of a split deployment, by environment ...
#   docker run -p 8001:8001 -e BOXOFFICE__MODULES=auth -e BOXOFFICE__SERVER__BIND=0.0.0.0:8001 \
#     -e BOXOFFICE__DATABASE__URL=postgres://... -e BOXOFFICE__REDIS__URL=redis://... \
#     -e BOXOFFICE__AUTH__SIGNING_KEY="$(cat signing.pem)" boxoffice
#   # ... or by arguments (they replace CMD), or with its profile (config/split/auth.toml)
#   docker run -p 8001:8001 boxoffice serve --modules auth --bind 0.0.0.0:8001
#   docker run -p 8001:8001 -e BOXOFFICE_PROFILE=split/auth boxoffice
#   # one-off commands
#   docker run --rm -v boxoffice-data:/var/lib/boxoffice boxoffice migrate
#   docker run --rm -v boxoffice-data:/var/lib/boxoffice -e BOXOFFICE_ADMIN_PASSWORD=... \
#     boxoffice admin create --email admin@example.com
#
# Every configuration key can be set as BOXOFFICE__SECTION__KEY (see config/default.toml and
# modules/<module>/config.toml).
# BOXOFFICE__DATA_DIR is set below because config/split/auth.toml does not set data_dir, and
# the default ./data would not be writable here. Environment variables outrank
# --config files, so use another BOXOFFICE__DATA_DIR to move the data.
#
# No HEALTHCHECK: the runtime image has no curl or wget, and the binary has no probe
# subcommand. Let the orchestrator probe GET /health/live and GET /health/ready.
#
# The build uses BuildKit cache mounts (the default builder since Docker 23) so that rebuilds
# reuse the crate registry and target directory. The tree needs no system libraries: SQLite is
# compiled from source with the gcc that the rust image ships, and the one TLS stack (SMTP's) is
# rustls with ring and compiled-in webpki roots: no OpenSSL.

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /build
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked \
 && install -D -m 0755 target/release/boxoffice /out/boxoffice

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 boxoffice \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin boxoffice \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/boxoffice
COPY --from=builder /out/boxoffice /usr/local/bin/boxoffice
COPY config/ /app/config/
WORKDIR /app
ENV BOXOFFICE_PROFILE=production \
    BOXOFFICE_CONFIG_DIR=/app/config \
    BOXOFFICE__DATA_DIR=/var/lib/boxoffice
# SQLite files and the generated token-signing key (auth-signing-key.pem) live here.
VOLUME ["/var/lib/boxoffice"]
USER 10001:10001
# 8080 for the single binary; split services listen where --bind or their profile says (auth 8001,
# movie 8002, booking 8003, payment 8004, notification 8005).
EXPOSE 8080
ENTRYPOINT ["boxoffice"]
CMD ["serve"]
