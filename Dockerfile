# syntax=docker/dockerfile:1
# The release image of bluegreen-controller: one statically linked binary, nothing else.
#
# Release pipeline:  docker build --build-arg REVISION=$(git rev-parse HEAD) -t IMAGE .
# Without a Docker engine, `make image` (scripts/image.sh) assembles the same final stage
# from the same static binary with umoci and skopeo; e2e/tests/image.rs checks that the
# image it writes has the user, entrypoint and labels declared below.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# glibc, linked statically (-C target-feature=+crt-static): kube talks TLS through rustls
# with ring, so there is no OpenSSL to link, and in a cluster the API server is reached by
# its IP address (KUBERNETES_SERVICE_HOST), so no NSS module is needed at run time.
# Profile `image` (workspace Cargo.toml) is release without debug info, stripped.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --locked --profile image --target x86_64-unknown-linux-gnu \
        -p bluegreen-controller --bin bluegreen-controller \
    && cp target/x86_64-unknown-linux-gnu/image/bluegreen-controller /bluegreen-controller

# No shell, no package manager, no libc: the binary needs none of them.
FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="bluegreen-controller" \
      org.opencontainers.image.description="Kubernetes controller for blue-green releases" \
      org.opencontainers.image.source="https://github.com/bluegreen-dev/bluegreen" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=builder /bluegreen-controller /bluegreen-controller
# The system roots (as in distroless/static): the API server's CA comes from the kubeconfig
# or the ServiceAccount, but kube's TLS stack loads these when a kubeconfig names no CA.
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# The chart's podSecurityContext runs as 65532 too (the "nonroot" user of distroless).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/bluegreen-controller"]
