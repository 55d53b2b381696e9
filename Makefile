# The two README commands: `make demo` and `make test`.
# Both create .venv on first use and re-install only when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# Packages are installed with uv (from PyPI into .venv): several times faster than pip on torch's wheels.
# uv does not read pip's configuration, so a constraint pip is configured with (a machine's cap on
# torch, say) is passed on to it. --compile-bytecode writes the .pyc files at install, as pip does:
# where Python may not write them (PYTHONDONTWRITEBYTECODE), every interpreter would compile torch's
# sources again at start.
PIP_CONSTRAINT_FILE := $(shell $(PYTHON) -m pip config list 2>/dev/null | sed -n "s/^[^ ]*\.constraint='\(.*\)'$$/\1/p" | head -n 1)
INSTALL := $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python $(if $(PIP_CONSTRAINT_FILE),--constraint $(PIP_CONSTRAINT_FILE))
PYTEST := $(BIN)/python -m pytest
# Tiers (pyproject.toml lists the markers): test-fast leaves out what starts Ray or runs long.
FAST   := not ray and not cluster and not slow
# make test runs the tests that start no Ray runtime on one pytest worker per core (pytest-xdist), then
# the Ray and cluster tiers one at a time: each of those starts its own Ray runtime sized to the machine.
# --dist loadfile: a test file runs on one worker, so its module fixtures (a trained model, ten
# data-parallel trials) are built once, not once per worker that its tests land on.
NO_RAY := not ray and not cluster
WORKERS ?= 2

.PHONY: demo test test-fast lint format install install-dev bench docs docs-serve docs-pages clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(BIN)/uv: | $(BIN)/python
	$(PIP) install --quiet uv

$(VENV)/.installed: pyproject.toml | $(BIN)/uv
	$(INSTALL) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/uv
	$(INSTALL) -e '.[dev,docs]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed  ## create .venv and install normbench

install-dev: $(VENV)/.installed-dev  ## create .venv and install normbench with the dev and docs extras

demo: $(VENV)/.installed  ## one SimCLR trial on the built-in CPU testbed (digits-colour), untrained vs trained
	@echo "make demo: SimCLR learns digits-colour (5,000 images, built in) for 8 epochs on this CPU, then prints"
	@echo "           kNN accuracy before and after training; a few minutes on 2 cores (examples/demo.yaml)"
	$(BIN)/normbench trial -c examples/demo.yaml --out results/demo --overwrite

lint: $(VENV)/.installed-dev  ## ruff: lint and format check
	$(BIN)/ruff check suite methods tests examples benchmarks
	$(BIN)/ruff format --check suite methods tests examples benchmarks

format: $(VENV)/.installed-dev  ## ruff: fix what it can and reformat
	$(BIN)/ruff check --fix suite methods tests examples benchmarks
	$(BIN)/ruff format suite methods tests examples benchmarks

test: lint  ## everything: lint, then every test (the README's and CI's command)
	$(PYTEST) -q -m "$(NO_RAY)" -n $(WORKERS) --dist loadfile
	$(PYTEST) -q -m "ray or cluster"

test-fast: lint  ## lint, then every test but the ray, cluster and slow tiers
	$(PYTEST) -q -m "$(FAST)" -n $(WORKERS) --dist loadfile

docs: $(VENV)/.installed-dev  ## build the documentation site into build/site (strict: every link and anchor must resolve)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

docs-serve: $(VENV)/.installed-dev  ## serve the documentation site locally with live reload
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

docs-pages: $(VENV)/.installed-dev  ## regenerate the committed reference pages (config keys, CLI, methods, claims, benchmarks)
	$(BIN)/python -c 'from suite.cli import build_parser; from suite.tools.docs import write_pages; \
		print("\n".join(map(str, write_pages(build_parser()))) or "docs pages up to date")'

bench: $(VENV)/.installed  ## the speed figures, each next to a same-process reference (asserts nothing)
	$(BIN)/normbench bench

clean:  ## remove the virtualenv and caches (results are kept)
	rm -rf $(VENV) .pytest_cache build *.egg-info
