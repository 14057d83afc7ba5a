# Set-up and test commands (see README). `make test` builds a fresh virtual environment and runs the whole suite.
PYTHON ?= python3
VENV ?= .venv-test
# A CPU build of torch; a user elsewhere can bring their own, e.g.
#   make test TORCH_SPEC="torch==2.5.1" TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PIP = $(VENV)/bin/python -m pip

.PHONY: env test lint train

env:
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[dev,plot]"

test: env
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/python -m pytest -q tests
	$(VENV)/bin/ruff check .

lint:
	$(VENV)/bin/ruff check .
