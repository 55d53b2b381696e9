# The two README commands: `make demo` and `make test`.
# Both create .venv on first use and re-install only when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test install install-dev bench clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed  ## create .venv and install normbench

install-dev: $(VENV)/.installed-dev  ## create .venv and install normbench with the dev extras

demo: $(VENV)/.installed  ## one local trial on the embedded digits dataset, then its summary
	$(BIN)/normbench trial --out results/demo --overwrite

test: $(VENV)/.installed-dev  ## the whole test suite
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed  ## the speed figures, each next to a same-process reference (asserts nothing)
	$(BIN)/normbench bench

clean:  ## remove the virtualenv and caches (results are kept)
	rm -rf $(VENV) .pytest_cache build *.egg-info
