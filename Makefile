# zksolvency: one entry point for installing, testing and running the demo.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP_PY   := $(VENV)/.installed
STAMP_DEV  := $(VENV)/.installed-dev
STAMP_NODE := node_modules/.installed

.PHONY: install install-dev test demo lint typecheck bench fuzz clean

# Python and Node dependencies install side by side (-j2): they share nothing.
install:
	@$(MAKE) --no-print-directory -j2 $(STAMP_PY) $(STAMP_NODE)

install-dev:
	@$(MAKE) --no-print-directory -j2 $(STAMP_DEV) $(STAMP_NODE)

# The C file too: pip install -e compiles the native Poseidon into prover/.
$(STAMP_PY): pyproject.toml prover/_poseidon.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e .
	touch $@

# Test and lint tools come on top of the runtime install.
$(STAMP_DEV): $(STAMP_PY)
	$(BIN)/pip install --quiet --upgrade setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# `npm ci` refuses this lock: the foundry packages list optional per-platform binaries that the
# registry mirror does not carry, so the lock cannot name them. `npm install --no-save` installs
# exactly the locked versions and leaves package-lock.json untouched.
$(STAMP_NODE): package.json package-lock.json
	npm install --no-save --no-audit --no-fund --loglevel=error
	touch $@

## make test: lint, type-check, then the whole pytest suite (slow and bench markers excluded).
test: install-dev lint typecheck
	$(BIN)/pytest

## make demo: build circuits and keys, prove a sample epoch, publish it on a local anvil, verify one user.
demo: install
	$(BIN)/zksolvency demo --workdir demo-out

lint: install-dev
	$(BIN)/ruff check prover cli tests benchmarks
	$(BIN)/ruff format --check prover cli tests benchmarks

# mypy checks the installed layout (zksolvency.prover, zksolvency.cli): lay the sources out so.
typecheck: install-dev
	rm -rf build/typecheck && mkdir -p build/typecheck/zksolvency
	cp -r prover build/typecheck/zksolvency/prover && cp -r cli build/typecheck/zksolvency/cli
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p zksolvency

fuzz: install-dev
	$(BIN)/pytest -m slow

bench: install
	$(BIN)/python benchmarks/bench_epoch.py
	$(BIN)/python benchmarks/bench_packages.py

clean:
	rm -rf build demo-out
