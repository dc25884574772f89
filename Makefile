# Two commands do all the set-up on a fresh machine:
#   make run    create .venv, install dlexp and its dependencies, run the default experiment
#   make test   the same set-up, then the whole test suite, slow end-to-end tests included (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run test test-fast bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch first, pinned: an unpinned torch may pull a multi-GB CUDA build.
$(STAMP): $(PY) pyproject.toml
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[launchers,optuna,test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/dlexp train

# Everything, the tests marked slow included (lesson sweeps, launchers, wheel install, TensorBoard server).
test: install
	$(PY) -m pytest -q -m ''

# While working: without the tests marked slow.
test-fast: install
	$(PY) -m pytest -q

bench: install
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info runs
