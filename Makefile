# Set-up in two commands: `make demo` or `make test` (each creates .venv and installs on first use).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Pinned and installed first: a bare `torch` requirement can pull a CUDA build of several GB.
TORCH := torch==2.13.0
# Where pip finds torch. Empty: pip's configured index (PyPI, which serves the CUDA build on Linux).
# For the CPU build: make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: demo test

demo: $(STAMP)
	$(BIN)/graphmeta demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH)
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

