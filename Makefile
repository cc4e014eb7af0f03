# Set-up in two commands: `make demo` or `make test` (each creates .venv and installs on first use).
# `make lint` runs ruff's lint rules and mypy.
# `make docs` builds the documentation site into build/site; `make wheel-check` builds the wheel and
# the sdist into dist/ and runs the demo from the wheel in a fresh venv, outside the source tree, and
# checks its table rows and files (what tests/commands/test_demo_command.py checks with --slow).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
RELEASE_STAMP := $(VENV)/.installed-release
WHEEL_VENV := build/wheel-venv
# Pinned and installed first: a bare `torch` requirement can pull a CUDA build of several GB.
TORCH := torch==2.13.0
# Where pip finds torch. Empty: pip's configured index (PyPI, which serves the CUDA build on Linux).
# For the CPU build: make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: demo test lint docs wheel-check

demo: $(STAMP)
	$(BIN)/graphmeta demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH)
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

# ruff's lint rules, and mypy on the public API modules (pyproject.toml says which)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict --site-dir build/site

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e ".[dev,docs]"
	touch $(DOCS_STAMP)

# The wheel and the sdist (with the dataset cards and py.typed), checked by twine; then the wheel
# alone in a fresh venv (torch pinned first, as above), running the demo's smallest config from an
# empty folder, so nothing is imported from the source tree.
wheel-check: $(RELEASE_STAMP)
	rm -rf dist $(WHEEL_VENV)
	$(BIN)/python -m build --outdir dist
	$(BIN)/python -m twine check --strict dist/*
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH)
	$(WHEEL_VENV)/bin/python -m pip install dist/*.whl
	mkdir -p $(WHEEL_VENV)/demo
	cd $(WHEEL_VENV)/demo && ../bin/python -c "import graphmeta, sys; sys.exit('graphmeta imported from ' + graphmeta.__file__ + ', not the wheel') if '/site-packages/' not in graphmeta.__file__ else None"
	cd $(WHEEL_VENV)/demo && ../bin/graphmeta --version && ../bin/graphmeta datasets >/dev/null
	cd $(WHEEL_VENV)/demo && ../bin/graphmeta demo --steps 20 --no-progress --run-dir runs > demo.txt; status=$$?; cat demo.txt; exit $$status
	cd $(WHEEL_VENV)/demo && for row in "no adaptation" "after adaptation" "trained from scratch" "ablation: no message passing"; do grep -q "$$row" demo.txt || { echo "the demo printed no row '$$row'"; exit 1; }; done
	cd $(WHEEL_VENV)/demo && ls runs/demo-*/figures/curves.png runs/demo-*/evaluation-test-1step.json runs/demo-*/ablation/checkpoints/best.pt

$(RELEASE_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e ".[dev,release]"
	touch $(RELEASE_STAMP)

