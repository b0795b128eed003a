#!/usr/bin/env bash
# make image: the Dockerfile's final stage, built here without a Docker engine and without
# pulling anything.
#
#   1. cargo builds the static binary exactly as the Dockerfile's builder stage does;
#   2. umoci (daemonless, from Debian) makes an OCI layout holding one layer with that
#      binary and a CA bundle, and the config the Dockerfile declares (user, entrypoint,
#      labels);
#   3. skopeo writes the layout as an OCI archive: target/oci/bluegreen-controller.oci.tar
#
# Load it into a registry with
#   skopeo copy oci-archive:target/oci/bluegreen-controller.oci.tar docker://REGISTRY/bluegreen-controller:VERSION
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-gnu
OUT=target/oci
ARCHIVE=$OUT/bluegreen-controller.oci.tar
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's time, so that two builds of one commit carry the same creation date.
CREATED=$(date -u -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)" +%Y-%m-%dT%H:%M:%SZ)

for tool in umoci skopeo; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: run \`make tools\`" >&2; exit 1; }
done

RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --locked --profile image --target "$TARGET" \
    -p bluegreen-controller --bin bluegreen-controller
BIN=target/$TARGET/image/bluegreen-controller

# The CA bundle is the one distroless/static carries too: the API server's CA always comes
# from the kubeconfig or the ServiceAccount, but kube's TLS stack (rustls with the platform
# verifier) loads the system roots when a kubeconfig names none, and fails without them.
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
[ -f "$CA_BUNDLE" ] || { echo "$CA_BUNDLE is missing: install Debian's ca-certificates" >&2; exit 1; }

rm -rf "$OUT/layout" "$OUT/rootfs" "$ARCHIVE"
mkdir -p "$OUT/rootfs/etc/ssl/certs"
# Root-owned like the Dockerfile's COPY: the binary 0755, the bundle 0644.
install -m 0755 "$BIN" "$OUT/rootfs/bluegreen-controller"
install -m 0644 "$CA_BUNDLE" "$OUT/rootfs/etc/ssl/certs/ca-certificates.crt"
# The layer is written by tar, not by `umoci insert`: umoci 0.4.7 (Debian 12) leaves out a
# tar's end-of-archive blocks, which strict readers (Python's tarfile, Rust's tar) refuse.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="$CREATED" \
    -C "$OUT/rootfs" -cf "$OUT/layer.tar" bluegreen-controller etc

umoci init --layout "$OUT/layout"
umoci new --image "$OUT/layout:$VERSION"
umoci raw add-layer --image "$OUT/layout:$VERSION" \
    --history.created "$CREATED" \
    --history.created_by "COPY bluegreen-controller, ca-certificates.crt # make image" \
    "$OUT/layer.tar"
umoci config --image "$OUT/layout:$VERSION" \
    --created "$CREATED" --history.created "$CREATED" \
    --history.created_by "USER, ENTRYPOINT, LABEL of the Dockerfile # make image" \
    --architecture amd64 --os linux \
    --config.user 65532:65532 \
    --config.entrypoint /bluegreen-controller \
    --config.exposedports 8080/tcp \
    --config.workingdir / \
    --config.label org.opencontainers.image.title=bluegreen-controller \
    --config.label "org.opencontainers.image.description=Kubernetes controller for blue-green releases" \
    --config.label org.opencontainers.image.source=https://github.com/bluegreen-dev/bluegreen \
    --config.label org.opencontainers.image.licenses=Apache-2.0 \
    --config.label "org.opencontainers.image.version=$VERSION" \
    --config.label "org.opencontainers.image.revision=$REVISION"

skopeo copy --quiet "oci:$OUT/layout:$VERSION" "oci-archive:$ARCHIVE:bluegreen-controller:$VERSION"
rm -rf "$OUT/layout" "$OUT/layer.tar"
echo "$ARCHIVE: $(du -k "$ARCHIVE" | cut -f1) KiB, binary $(du -k "$BIN" | cut -f1) KiB"
