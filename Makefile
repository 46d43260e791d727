# `make demo` and `make test` work on a fresh machine: both create .venv first.
PYTHON ?= python3
VENV ?= .venv
# A CPU build here; elsewhere e.g. `make venv TORCH_SPEC=torch` for the latest CUDA build.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[all]"
	touch $(STAMP)

demo: venv
	$(VENV)/bin/jepa-wms demo --env wall --out runs/demo

test: venv
	$(PY) -m pytest tests

lint: venv
	$(VENV)/bin/ruff check jepa_wms tests bench experiments hubconf.py

bench: venv
	$(PY) bench/train_throughput.py
	$(PY) bench/planning_time.py

clean:
	rm -rf $(VENV) runs .pytest_cache
