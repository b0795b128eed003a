#!/usr/bin/env bash
# The e2e scenario suite on the upstream control plane (scripts/kube.sh): starts it under
# DIR (default target/kube-e2e), installs the chart with Helm's library, runs the suite with
# the controller under a token of the chart's ServiceAccount (RBAC enforced by the real
# authorizer), compares what that ServiceAccount used with what the chart grants, and stops
# every process it started by PID — also when something fails or is interrupted.
#
# Arguments are passed to `cargo test` (e.g. `--test survival`): a part of the suite, for
# which the used/granted comparison is skipped (a part cannot use every grant).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${BLUEGREEN_KUBE_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/kube-e2e}"
KUBECTL="${BLUEGREEN_KUBECTL:-$ROOT/.tools/py/bin/kubectl}"
PYTHON="$ROOT/.tools/py/bin/python"
CHART_NAMESPACE=bluegreen-e2e
SA=e2e-bluegreen-controller

"$ROOT/scripts/kube.sh" down "$DIR"
rm -rf "$DIR"
trap '"$ROOT/scripts/kube.sh" down "$DIR"' EXIT
"$ROOT/scripts/kube.sh" up "$DIR"
export KUBECONFIG="$DIR/kubeconfig"

# The chart as a user installs it (Helm's library), then the controller's credentials: a
# TokenRequest token of the chart's ServiceAccount.
# Its own release and namespace, so the suite's chart tests can install theirs beside it;
# leader election on, so the chart grants the Lease the leader-election scenario needs.
"$PYTHON" "$ROOT/charts/bluegreen-controller/ci/helm.py" install --kubeconfig "$KUBECONFIG" \
  --release e2e --namespace "$CHART_NAMESPACE" --values '{"leaderElection": {"enabled": true}}'
token="$("$KUBECTL" create token "$SA" -n "$CHART_NAMESPACE" --duration 24h)"
ca="$(base64 -w0 < "$DIR/pki/ca.crt")"
server="$("$KUBECTL" config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
cat > "$DIR/controller.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "$server", certificate-authority-data: "$ca"}
users:
- name: $SA
  user: {token: "$token"}
contexts:
- name: local
  context: {cluster: local, user: $SA, namespace: $CHART_NAMESPACE}
current-context: local
KC

started=$SECONDS
suite=0
BLUEGREEN_E2E_CLUSTER=1 BLUEGREEN_KUBE_AUDIT_LOG="$DIR/audit.log" \
  BLUEGREEN_CONTROLLER_KUBECONFIG="$DIR/controller.kubeconfig" \
  BLUEGREEN_CONTROLLER_NAMESPACE="$CHART_NAMESPACE" \
  cargo test -p bluegreen-e2e --no-fail-fast "$@" -- --test-threads=4 || suite=$?
echo "e2e-kube: suite ran in $((SECONDS - started)) s on the upstream control plane" >&2

# Whatever the suite's verdict, what the controller's ServiceAccount used against what the
# chart grants it: a refused request names the grant it lacks.
coverage=0
if (($# > 0)); then
  echo "e2e-kube: a part of the suite ($*): the used/granted RBAC comparison is skipped" >&2
  ((suite == 0))
  exit
fi
python3 "$ROOT/kube/rbac_coverage.py" "$DIR/audit.log" "$KUBECTL" "$KUBECONFIG" "$SA" "$CHART_NAMESPACE" || coverage=$?
((suite == 0 && coverage == 0))
