# Set-up in two commands: `make demo` or `make test` (each creates .venv and installs on first use).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Pinned and installed first: a bare `torch` requirement can pull a CUDA build of several GB.
TORCH := torch==2.13.0

.PHONY: demo test

demo: $(STAMP)
	$(BIN)/graphmeta demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

