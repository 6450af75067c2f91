# syntax=docker/dockerfile:1
# exsync container image: multi-stage build, small runtime, non-root user.
# The build needs no database (queries are checked at run time, migrations are embedded).
# Configuration and the credential key are mounted as files (see docs/operations.md):
#   -v ./exsync.toml:/etc/exsync/exsync.toml:ro  -e EXSYNC_CONFIG=/etc/exsync/exsync.toml
#   -v ./credential.key:/etc/exsync/credential.key:ro
#   -e EXSYNC__SECURITY__CREDENTIAL_KEY_FILE=/etc/exsync/credential.key

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
# benches/ is needed: Cargo.toml declares the [[bench]] targets and cargo refuses a
# manifest whose declared targets are missing.
COPY benches ./benches
COPY src ./src
# Workspace members (Cargo refuses a workspace whose members are missing).
COPY crates ./crates
COPY migrations ./migrations
# The same command as the release build everywhere else (README, docs/operations.md).
# BuildKit cache mounts keep the crates.io downloads and the compiled dependencies between
# builds, so a change to exsync's own code rebuilds exsync only. The binary is copied out of
# the cached target directory (cache mounts are not part of the image).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
 && cp target/release/exsync /usr/local/bin/exsync

FROM debian:bookworm-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin exsync
COPY --from=build /usr/local/bin/exsync /usr/local/bin/exsync
COPY config/exsync.example.toml /etc/exsync/exsync.example.toml
# /healthz, /readyz and /metrics listen here (override with EXSYNC__SERVER__LISTEN).
ENV EXSYNC__SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080
USER 10001:10001
# SIGTERM drains passes in flight within scheduler.shutdown_deadline (default 30 s): give
# the container runtime a longer grace period (docker stop -t / terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
# The runtime image has no curl: the binary probes its own /healthz.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/exsync", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/exsync"]
CMD ["run"]
