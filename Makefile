# Set-up and test commands (see README). `make test` builds a fresh virtual environment and runs the whole suite.
PYTHON ?= python3
VENV ?= .venv-test
# A CPU build of torch; a user elsewhere can bring their own, e.g.
#   make test TORCH_SPEC="torch==2.5.1" TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PIP = $(VENV)/bin/python -m pip

.PHONY: env test lint install-check

env:
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[dev,plot]"

test: env install-check
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/python -m pytest -q tests
	$(VENV)/bin/ruff check .

# A plain `pip install` of the built wheel, no extras, in another fresh venv: every module imports and the CLI runs.
WHEEL_VENV ?= .venv-wheel
install-check:
	rm -rf $(WHEEL_VENV) build
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(WHEEL_VENV)/bin/python -m pip wheel -q --no-deps -w build/wheel-check .
	$(WHEEL_VENV)/bin/python -m pip install -q build/wheel-check/vitpose_plus-*.whl
	cd /tmp && HF_HUB_OFFLINE=1 $(CURDIR)/$(WHEEL_VENV)/bin/python $(CURDIR)/.ci/import_everything.py
	cd /tmp && $(CURDIR)/$(WHEEL_VENV)/bin/vitpose-plus --help > /dev/null
	cd /tmp && $(CURDIR)/$(WHEEL_VENV)/bin/python -m vitpose_plus --help > /dev/null
	rm -rf build

lint:
	$(VENV)/bin/ruff check .
