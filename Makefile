# The verbs people type. Everything installs what it needs into .venv and a
# build cache outside the repo (see hack/build-binaries.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# make test: the node's tests beside the rest (tests/parallel.py); 0: one process
TEST_WORKERS ?= 2
ASSETS_FILE := .cluster-assets
AWS_REGIONS := operator/destination_operator/tools/aws_regions.py
CHART_GENERATED := charts/destination-operator/templates/crds.yaml charts/destination-operator/README.md

.PHONY: help venv binaries demo demo-down test test-unit test-cluster lint typecheck crds verify \
        cluster-up cluster-down image release bench clean

help: ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml hack/bootstrap.sh
	@bash hack/bootstrap.sh $(PYTHON) $(VENV)
	@touch $@

venv: $(STAMP) ## create .venv with the operator and its test tools

binaries: ## build (or reuse) what the tests use: control plane, helm, kubelet, kube-scheduler, kstatus, prometheus and promtool, oldest Kubernetes
	@bash hack/build-binaries.sh all >/dev/null

demo: $(STAMP) ## the main job: control plane, S3 server, operator, sample Destinations (builds the control plane only)
	@$(BIN)/python hack/demo.py up

demo-down: $(STAMP) ## stop everything the demo started
	@$(BIN)/python hack/demo.py down

cluster-up: $(STAMP) ## start etcd, kube-apiserver, kube-controller-manager; prints the kubeconfig path
	@$(BIN)/python hack/controlplane.py up --state .cluster

cluster-down: $(STAMP) ## stop the control plane that cluster-up started
	@$(BIN)/python hack/controlplane.py down --state .cluster

lint: $(STAMP) ## ruff, mypy --strict, the layer contracts (import-linter), actionlint over .github/workflows
	@$(BIN)/ruff check operator tests hack bench
	@$(BIN)/ruff format --check operator tests hack bench
	@$(BIN)/mypy
	@PYTHONPATH=operator $(BIN)/lint-imports --no-cache
	@# Without shellcheck and pyflakes (-shellcheck= -pyflakes=): nothing installs them, and
	@# the result must not depend on what a machine happens to have on its PATH.
	@bin=$$(bash hack/build-binaries.sh lint) && $$bin/actionlint -shellcheck= -pyflakes=

crds: $(STAMP) binaries ## regenerate crds/ from the models, the chart's CRD template and manifests/ from them, the chart's README from its values, lint's AWS regions from botocore, the CLI reference from the parser
	@$(BIN)/python -m destination_operator.tools.crdgen --write crds/destinations.destinations.io.yaml
	@$(BIN)/python hack/chart.py render
	@$(BIN)/python hack/chart_readme.py write
	@$(BIN)/python hack/aws_regions.py --write $(AWS_REGIONS)
	@$(BIN)/python hack/cli_reference.py write

verify: crds ## fail when the committed CRD, the chart's CRD template or README, manifests/, lint's AWS regions or the CLI reference drift from their sources
	@git diff --exit-code -- crds/ $(CHART_GENERATED) manifests/ $(AWS_REGIONS) docs/cli-reference.md || { echo "verify: crds/, $(CHART_GENERATED), manifests/, $(AWS_REGIONS) or docs/cli-reference.md is stale: run 'make crds' and commit the result" >&2; exit 1; }

test: $(STAMP) binaries verify lint ## the whole suite: lint, unit, providers, cluster
	@bin=$$(bash hack/build-binaries.sh all) && DESTINATION_OPERATOR_BIN_DIR=$$bin $(BIN)/pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-unit: $(STAMP) ## unit and docs tests (no control plane)
	@$(BIN)/pytest tests/unit tests/docs $(PYTEST_ARGS)

image: $(STAMP) ## build the operator's image with buildah (an OCI archive; see docs/image.md)
	@$(BIN)/python hack/image.py build

release: $(STAMP) ## VERSION=x.y.z [OUT=dist]: the release's artifacts in dist/ (image, chart, install.yaml, SBOM, checksums; docs/release.md)
	@test -n "$(VERSION)" || { echo "usage: make release VERSION=x.y.z" >&2; exit 2; }
	@bin=$$(bash hack/build-binaries.sh release) && $(BIN)/python hack/release.py $(VERSION) --out $(or $(OUT),dist) --bin-dir $$bin

bench: $(STAMP) ## benchmarks: print numbers, never fail on them (builds the control plane only)
	@bin=$$(bash hack/build-binaries.sh controlplane) && DESTINATION_OPERATOR_BIN_DIR=$$bin $(BIN)/python bench/run.py

clean: ## remove local state (not the binary cache)
	rm -rf $(VENV) .cluster .demo .servers
