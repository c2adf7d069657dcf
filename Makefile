# Two entry points: `make demo` (the main job) and `make test`. Both set up
# everything first: system packages through apt, a virtualenv in .venv, the
# CPU build of torch (override TORCH= for your own build, see README), and
# dualasr with its dependencies.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
CONFIG ?= conf/demo.yaml
OUT ?= runs/demo
INSTALLED := $(VENV)/.installed

.PHONY: setup system-deps demo test smoke lint clean

setup: system-deps $(INSTALLED)

system-deps:
	@bash scripts/install-system-deps.sh

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(if $(strip $(TORCH)),$(BIN)/pip install -q "$(TORCH)")
	# dev includes the pretrained extra (transformers, for tests/model/test_pretrained.py);
	# it requires torch without pinning it, so the torch installed above stays.
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

# The whole study on the demo config: corpus, features, SSO/MSO/DO per language,
# decoding, scoring, CKA analysis, report. It ends by printing the report's path.
demo: setup
	$(BIN)/dualasr study --config $(CONFIG) --out $(OUT)
	for lang in en ko; do $(BIN)/dualasr package $(OUT)/exp/$$lang/do/seed0 $(OUT)/models/$$lang-do.dualasr || exit 1; done
	@echo "try: $(BIN)/dualasr transcribe $(OUT)/models/en-do.dualasr RECORDING.wav [--text 'what you meant']"

smoke: setup
	$(BIN)/dualasr study --config conf/smoke.yaml --out runs/smoke

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf runs .pytest_cache .ruff_cache
