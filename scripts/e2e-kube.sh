#!/usr/bin/env bash
# The e2e scenario suite on the upstream control plane (scripts/kube.sh): starts it under
# DIR (default target/kube-e2e), runs the suite against it, and stops every process it
# started by PID — also when the suite fails or is interrupted.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${BLUEGREEN_KUBE_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/kube-e2e}"
"$ROOT/scripts/kube.sh" down "$DIR"
rm -rf "$DIR"
trap '"$ROOT/scripts/kube.sh" down "$DIR"' EXIT
"$ROOT/scripts/kube.sh" up "$DIR"
started=$SECONDS
KUBECONFIG="$DIR/kubeconfig" BLUEGREEN_E2E_CLUSTER=1 BLUEGREEN_KUBE_AUDIT_LOG="$DIR/audit.log" \
  cargo test -p bluegreen-e2e --no-fail-fast -- --test-threads=4
echo "e2e-kube: suite ran in $((SECONDS - started)) s on the upstream control plane" >&2
