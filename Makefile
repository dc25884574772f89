# Two commands do all the set-up on a fresh machine:
#   make run    create .venv, install dlexp and its dependencies, run the default experiment
#   make test   the same set-up plus what the tests need (pytest, Ray), then make lint, then the whole test
#               suite, slow end-to-end tests included (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# make run: dlexp with its launchers and the Optuna sweeper. make test adds what only the tests need: pytest,
# and Ray (hydra/launcher=ray is tested, but a learner who never uses a cluster should not wait for it).
STAMP      := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install run lint test test-fast bench clean

# setuptools prints a notice on every editable install of this layout (conf/ ships as the package dlexp.conf):
# "Editable installation. Please be careful with folders ...". It is information, not a problem; not shown.
export PYTHONWARNINGS ?= ignore:Editable installation

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch first, pinned: an unpinned torch may pull a multi-GB CUDA build.
TORCH := $(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install -q torch==2.13.0

$(STAMP): $(PY) pyproject.toml
	$(TORCH)
	$(PY) -m pip install -q -e '.[launchers,optuna]'
	touch $(STAMP)

# Everything make run installs and what the tests need, in one pip call (one resolution, one editable build).
$(TEST_STAMP): $(PY) pyproject.toml
	$(TORCH)
	$(PY) -m pip install -q -e '.[launchers,optuna,test,ray]'
	touch $(STAMP) $(TEST_STAMP)

# The development set-up: everything, tests included.
install: $(TEST_STAMP)

run: $(STAMP)
	$(VENV)/bin/dlexp train

# Everything, the tests marked slow included (lesson sweeps, launchers, wheel install, TensorBoard server), on every
# core, a test file's tests on one worker (they share the sweeps their module-scoped fixtures train). Then the tests that compare a stack of jobs with the
# same jobs alone once more, on another kernel path and with every batched product rounded one unit in the last
# place off: what another CPU may do (tests/rounding/), so that a comparison only this CPU would pass fails here.
# Lint first: a lint, format or type error fails CI before the suite runs.
XDIST := -n auto --dist loadscope
test: $(TEST_STAMP) lint
	$(PY) -m pytest -q -m '' $(XDIST)
	DLEXP_TEST_ROUNDING=ulp ATEN_CPU_CAPABILITY=default $(PY) -m pytest -q -m kernels $(XDIST)

# Lint, format and types, configured in pyproject.toml ([tool.ruff], [tool.mypy]). `ruff format .` and
# `ruff check --fix .` repair most of what the first two find.
lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# While working: without the tests marked slow.
test-fast: $(TEST_STAMP)
	$(PY) -m pytest -q $(XDIST)

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info runs
