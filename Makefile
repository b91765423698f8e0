# Two commands: `make demo` and `make test`. Each creates or updates .venv and installs what it needs.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -c constraints.txt

.PHONY: demo test install install-dev clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

# The installs are redone whenever pyproject.toml or constraints.txt change.
$(VENV)/.kit-installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[kit]'
	@touch $@

$(VENV)/.dev-installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[dev]'
	@touch $@ $(VENV)/.kit-installed

install: $(VENV)/.kit-installed
install-dev: $(VENV)/.dev-installed

demo: $(VENV)/.kit-installed
	$(PY) -m models.info --variant 200mf
	@echo
	$(PY) -m models.info --variant 200mf --flavour seed

test: $(VENV)/.dev-installed
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
