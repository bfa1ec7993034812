# syntax=docker/dockerfile:1.7
# cantina-notify image: build with BuildKit (`docker build -t cantina-notify .`; the cache mounts keep the crates
# registry and the compiled dependencies between builds, so a source change rebuilds only this crate).
# The build step is scripts/build-release, the same command CI runs.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    scripts/build-release /out

# Runtime: glibc, CA certificates and tzdata-free (jiff bundles the zone data); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/cantina-notify /usr/local/bin/cantina-notify
# distroless' nonroot user, by number so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
# Calls /healthz on CANTINA__HTTP__ADDR (0.0.0.0 is reached as 127.0.0.1) and exits 0 or 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/cantina-notify", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/cantina-notify"]
CMD ["run"]
