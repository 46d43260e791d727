# `make demo` and `make test` work on a fresh machine: both create .venv first.
PYTHON ?= python3
VENV ?= .venv
# A CPU build here; elsewhere e.g. `make venv TORCH_SPEC=torch` for the latest CUDA build.
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv robosuite demo test lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[all]"
	touch $(STAMP)

# robosuite 1.5.2 for the franka-tabletop / robocasa envs. Its declared deps include mink, which pins numpy < 2
# (pyarrow needs >= 2), so it goes in with --no-deps plus what it imports; numpy is pinned to the installed version
# so that pip picks a numba built for it instead of changing numpy under the rest of the venv.
ROBOSUITE_STAMP := $(VENV)/.robosuite

robosuite: $(ROBOSUITE_STAMP)

$(ROBOSUITE_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --no-deps robosuite==1.5.2
	$(PY) -m pip install --quiet "numpy==$$($(PY) -c 'import numpy; print(numpy.__version__)')" numba termcolor \
		opencv-python-headless
	touch $(ROBOSUITE_STAMP)

demo: venv
	$(VENV)/bin/jepa-wms demo --env wall --out runs/demo

test: venv robosuite
	$(PY) -m pytest tests

lint: venv
	$(VENV)/bin/ruff check jepa_wms tests bench experiments hubconf.py

bench: venv
	$(PY) bench/train_throughput.py
	$(PY) bench/planning_time.py

clean:
	rm -rf $(VENV) runs .pytest_cache
