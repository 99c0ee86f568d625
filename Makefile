# Two commands on a fresh machine: `make lab` (or `make demo`) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
JUPYTER_ARGS ?=

.PHONY: lab demo test lint bench notebooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.lab-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[lab]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,lab]"
	touch $@

lab: $(VENV)/.lab-installed  ## open JupyterLab on the lessons
	$(BIN)/jupyter lab --notebook-dir=notebooks $(JUPYTER_ARGS)

demo: $(VENV)/.lab-installed  ## the seed's demo: task A (MNIST), then task B (Fashion-MNIST)
	$(BIN)/ewclab demo
	$(BIN)/ewclab demo --ewc

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .

test: lint  ## ruff, unit tests and every notebook (nbval)
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env tests $(wildcard notebooks/*.ipynb)

bench: $(VENV)/.test-installed  ## rewrite benchmarks/RESULTS.md
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
