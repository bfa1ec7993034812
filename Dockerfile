# Minimal image for now; the deployment issue hardens it (cargo-chef layers, distroless, HEALTHCHECK policy).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/cantina-notify /usr/local/bin/cantina-notify
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD ["cantina-notify", "healthcheck"]
ENTRYPOINT ["cantina-notify"]
CMD ["run"]
