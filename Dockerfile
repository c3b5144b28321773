# The alis-import image: the gRPC service, and the CLI the Kubernetes CronJob runs.
#
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" -t alis-import .
#
# Two stages. The builder compiles with the command CI and the README use,
# `cargo build --release --locked` (Cargo.lock must be current), first against stub
# sources so the dependencies land in a layer of their own that is reused until
# Cargo.toml or Cargo.lock change. The runtime is distroless: glibc, libgcc, CA
# certificates and tzdata (/usr/share/zoneinfo, which jiff reads for time zones), a
# non-root user, and no shell or package manager. There is no HEALTHCHECK: Kubernetes
# probes the grpc.health.v1 service natively (helm/alis-import).

FROM rust:1.95-bookworm AS builder
WORKDIR /build

# 1. Dependencies. Stub targets matching Cargo.toml's [lib] and [[bin]] paths, and a stub
# build script so the build dependencies (the protobuf compiler) are built here too.
# The stubs' own artifacts are then removed, fingerprints included: the real sources
# copied next can be older than the stubs, and Cargo must not take its stub builds
# for up to date.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > build.rs \
    && cargo build --release --locked \
    && rm -rf src build.rs \
        target/release/alis-import target/release/alis-import.d \
        target/release/.fingerprint/alis-import-* \
        target/release/build/alis-import-* \
        target/release/deps/alis_import-* \
        target/release/deps/libalis_import-*

# 2. The service. The context is the repository minus .dockerignore: sources, build.rs,
# proto/ and migrations/ (embedded at compile time).
COPY . .
RUN cargo build --release --locked

FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="alis-import" \
      org.opencontainers.image.description="Imports Vermont ALiS educator licences and endorsements into a school district ERP (gRPC service and CLI)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=builder /build/target/release/alis-import /usr/local/bin/alis-import

# distroless's "nonroot" user, numeric so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# Writable home of that user: the embedded default (no configuration) keeps its SQLite
# file and inbox under ./data/ here. In Kubernetes the root filesystem is read-only and
# the chart points ALIS_WORK_DIR at an emptyDir.
WORKDIR /home/nonroot
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/alis-import"]
CMD ["serve"]
