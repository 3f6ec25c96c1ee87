# syntax=docker/dockerfile:1
# Switchboard image: `docker build -t switchboard .`; docker-compose.yml runs it against ScyllaDB.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and compiled dependencies between builds; the binary is copied
# out because the target directory is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin switchboard \
    && cp target/release/switchboard /usr/local/bin/switchboard

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/switchboard switchboard
COPY --from=builder /usr/local/bin/switchboard /usr/local/bin/switchboard
USER switchboard
WORKDIR /var/lib/switchboard
# Listen on every interface inside the container; the embedded store (the default kind) lives in
# the non-root user's home.
ENV SWITCHBOARD_HTTP__ADDR=0.0.0.0:8080 \
    SWITCHBOARD_ADMIN__ADDR=0.0.0.0:9090 \
    SWITCHBOARD_STORE__PATH=/var/lib/switchboard/data
EXPOSE 8080 9090
# `switchboard serve` by default; other subcommands by argument (`docker run IMAGE migrate`).
ENTRYPOINT ["switchboard"]
CMD ["serve"]
