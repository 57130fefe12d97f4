# azaion-assets: `make demo` runs the whole asset graph, `make test` runs the tests.
# Both set everything up first on a fresh Debian machine (venv, packages, data dirs).

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
VAR := $(CURDIR)/var

# The demo profile: a tiny YOLO26 from its architecture YAML, on CPU-friendly sizes.
DEMO_ENV := AZAION_ROOT_DIR=$(VAR)/azaion DAGSTER_HOME=$(VAR)/dagster \
	TRAINING_MODEL=yolo26n.yaml TRAINING_EPOCHS=$(or $(EPOCHS),30) TRAINING_IMGSZ=128 \
	TRAINING_BATCH_SIZE=16 TRAINING_WORKERS=0 TRAINING_OPTIMIZER=AdamW TRAINING_LR0=0.002 \
	EXPORT_ONNX_IMGSZ=128

.PHONY: install system-deps demo dev test test-fast lint bench env-example settings-doc \
	screenshots clean

# Debian packages: python3-venv for the venv, rabbitmq-server (with its stream plugin) for the
# throwaway brokers that the tests, the demo and the benchmarks start, docker-compose (v1) for
# the tests that validate docker-compose.yml (no Docker engine needed), systemd for the
# systemd-analyze that checks deploy/systemd (no running systemd needed), chromium and
# chromium-driver for the browser test of the Dagster UI (Selenium drives Debian's own build),
# libicu-dev, pkg-config and g++ to build PyICU (the ingest's confusable names) against the
# system's ICU.
system-deps:
	@missing=""; \
	$(PYTHON) -m venv --help >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing="$$missing rabbitmq-server"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -x /usr/bin/chromedriver ] || missing="$$missing chromium-driver"; \
	pkg-config --exists icu-i18n 2>/dev/null || missing="$$missing libicu-dev pkg-config"; \
	command -v g++ >/dev/null 2>&1 || missing="$$missing g++"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

$(VENV)/.installed: pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	touch $@

install: $(VENV)/.installed

$(VAR)/dagster/dagster.yaml: dagster.yaml
	mkdir -p $(VAR)/dagster
	cp dagster.yaml $@

demo: install $(VAR)/dagster/dagster.yaml
	env $(DEMO_ENV) $(BIN)/azaion-assets demo --fresh

dev: install $(VAR)/dagster/dagster.yaml
	env $(DEMO_ENV) $(BIN)/dagster dev -w workspace.yaml

# Two pytest-xdist workers, a module each at a time (module fixtures stay shared): most tests
# wait on brokers, daemons and child processes, so two keep both cores busy.
test: install
	$(BIN)/pytest -n 2 --dist loadfile

# The edit-test loop: everything but the tests marked slow (brokers, daemons, training).
test-fast: install
	$(BIN)/pytest -m "not slow" --durations=5

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright
	$(BIN)/lint-imports
	$(BIN)/azaion-assets env-example --check
	$(BIN)/azaion-assets settings-doc --check
	$(BIN)/dagster definitions validate -m azaion_assets.definitions
	$(BIN)/dg check defs

bench: install
	$(BIN)/python -m bench.dataset_forming
	$(BIN)/python -m bench.stream_ingest
	$(BIN)/python -m bench.hostile_ingest
	$(BIN)/python -m bench.day_totals
	$(BIN)/python -m bench.retraining_tick
	$(BIN)/python -m bench.ingest_daemon
	$(BIN)/python -m bench.trickle
	$(BIN)/python -m bench.release_prepare
	$(BIN)/python -m bench.champion_gate
	$(BIN)/python -m bench.retraining_steps
	$(BIN)/python -m bench.pictures
	$(BIN)/python -m bench.year

env-example: install
	$(BIN)/azaion-assets env-example

# The operator's pages in docs/screenshots/ (docs/operator-ui.md), from the browser test.
screenshots: install
	AZAION_SCREENSHOTS=docs/screenshots $(BIN)/pytest azaion_assets_tests/e2e/test_ui.py

# The configuration reference (docs/configuration.md) and docs/configuring.md's list of groups.
settings-doc: install
	$(BIN)/azaion-assets settings-doc

clean:
	rm -rf $(VAR) .pytest_cache
