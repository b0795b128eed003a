#!/usr/bin/env bash
# `make demo`: kubesim + the controller binary + the example release, blue -> green.
# `make demo-kube` (scripts/demo.sh --kube): the same demo on the upstream control plane
# (scripts/kube.sh: etcd, kube-apiserver, controller-manager, scheduler and the simulated
# kubelet), built from the Go modules on first use.
# Everything runs on loopback; nothing is left running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=kubesim
case "${1:-}" in
  "") ;;
  --kube) BACKEND=kube ;;
  *) echo "usage: $0 [--kube]" >&2; exit 2 ;;
esac

KUBECTL=${BLUEGREEN_KUBECTL:-$PWD/.tools/py/bin/kubectl}
WORK=$(mktemp -d -t bluegreen-demo-XXXXXX)
export KUBECONFIG=$WORK/kubeconfig
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ $BACKEND == kube ]]; then scripts/kube.sh down "$WORK/kube"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
k() { "$KUBECTL" "$@"; }

# Waits (bounded) until `kubectl get bgr web` shows the wanted phase and version.
wait_for() {
  local phase=$1 version=$2 deadline=$((SECONDS + 90)) last=""
  while ((SECONDS < deadline)); do
    local now
    now=$(k get bgr web -o jsonpath='{.status.phase} {.status.activeVersion} {.status.message}' 2>/dev/null || true)
    if [[ "$now" != "$last" ]]; then echo "   $now"; last=$now; fi
    [[ "$now" == "$phase $version"* ]] && return 0
    sleep 0.2
  done
  echo "timed out waiting for $phase $version" >&2
  return 1
}

if [[ $BACKEND == kube ]]; then
  say "Starting the upstream control plane (etcd, kube-apiserver, controller-manager, scheduler, simulated kubelet)"
  scripts/kube.sh build
  scripts/kube.sh up "$WORK/kube"
  cp "$WORK/kube/kubeconfig" "$KUBECONFIG"
else
  say "Starting kubesim (a Kubernetes API simulator on loopback)"
  ./target/debug/kubesim serve --addr 127.0.0.1:0 --kubeconfig "$KUBECONFIG" >"$WORK/kubesim.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [[ -s "$KUBECONFIG" ]] && break; sleep 0.05; done
fi
k version 2>/dev/null | sed 's/^/   /' || true

say "Installing the BlueGreenRelease CRD"
k apply -f charts/bluegreen-controller/crds/bluegreenreleases.bluegreen.dev.yaml
k wait --for condition=Established --timeout 30s crd/bluegreenreleases.bluegreen.dev

say "Starting the controller (the same binary a cluster runs; it only gets a kubeconfig)"
BLUEGREEN_METRICS_ADDR=127.0.0.1:0 BLUEGREEN_LOG_FORMAT=text ./target/debug/bluegreen-controller >"$WORK/controller.log" 2>&1 &
pids+=($!)

say "Applying examples/web.yaml (version 1.0.0): the first release goes to blue"
k apply -f examples/web.yaml
wait_for Stable 1.0.0
k get bgr web
echo "   active Service selector: $(k get svc web -o jsonpath='{.spec.selector}')"

say "Upgrading to 1.1.0: green is deployed, smoke-tested through web-preview, then flipped"
k patch bgr web --type json -p '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"ghcr.io/example/web:1.1.0"}]'
wait_for Stable 1.1.0
k get bgr web -o wide
echo "   active Service selector:  $(k get svc web -o jsonpath='{.spec.selector}')"
echo "   preview Service selector: $(k get svc web-preview -o jsonpath='{.spec.selector}')"
k get rs,jobs

say "Rolling back (one more write): the warm blue color takes traffic again"
k annotate bgr web bluegreen.dev/action=rollback bluegreen.dev/action-id="demo-$RANDOM"
wait_for RolledBack 1.0.0
k get bgr web
echo "   active Service selector: $(k get svc web -o jsonpath='{.spec.selector}')"

say "History (status.history, newest first)"
k get bgr web -o jsonpath='{range .status.history[*]}   {.version} on {.color}: {.outcome} at {.finishedAt}{"\n"}{end}'

say "Events"
k get events --field-selector involvedObject.name=web 2>/dev/null | tail -n 12 || k get events | tail -n 12
say "Done ($BACKEND): blue -> green -> rolled back to blue"
