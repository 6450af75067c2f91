# syntax=docker/dockerfile:1
# exsync container image: multi-stage build, small runtime, non-root user.
# The build needs no database (queries are checked at run time, migrations are embedded).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked --bin exsync

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin exsync
COPY --from=build /src/target/release/exsync /usr/local/bin/exsync
COPY config/exsync.example.toml /etc/exsync/exsync.example.toml
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/exsync"]
CMD ["run"]
