# Two commands on a fresh machine: `make lab` (or `make demo`) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
JUPYTER_ARGS ?=
# `make lab` serves LAB_NOTEBOOKS, a git-ignored copy of notebooks/ made on the first run,
# so running the lessons never rewrites the committed notebooks (`make lab-fresh` recopies).
LAB_NOTEBOOKS ?= my-notebooks
# torch threads per kernel: one thread per core crawls on a busy or shared machine.
LAB_THREADS ?= 1
# `make app`: Voilà serves app/playground.ipynb at http://localhost:$(APP_PORT)/; APP_ARGS go
# to voila as they are (e.g. APP_ARGS=--no-browser).
APP_PORT ?= 8866
APP_ARGS ?=
# `make test-floor`: the tests that use torch most, in FLOOR_VENV, on the oldest torch and
# torchvision that pyproject.toml admits (tests/test_floor.py keeps FLOOR_PINS at that floor).
FLOOR_VENV ?= .venv-floor
FLOOR_PINS := torch==2.9.1 torchvision==0.24.1
FLOOR_TESTS := $(addprefix tests/test_,$(addsuffix .py,seed_usage learner ewc fisher persist \
	importance laplace side_by_side models heads data batchify buffer replay pitfalls \
	conventions split_run))
# lab/overrides.json (no news pop-up, ...) goes where JupyterLab reads setting overrides;
# lab/jupyter_server_config.json (idle-kernel culling) is read through JUPYTER_CONFIG_PATH.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.d/ewclab.json
# Jupyter refuses to run as root (containers, classroom servers) without --allow-root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab lab-fresh app demo test test-floor lint bench notebooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.lab-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[lab]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,lab]"
	touch $@ $(VENV)/.lab-installed

$(LAB_OVERRIDES): lab/overrides.json | $(BIN)/python
	mkdir -p $(@D) && cp $< $@

$(LAB_NOTEBOOKS):
	mkdir -p $@ && cp -R notebooks/. $@/ && rm -rf $@/.ipynb_checkpoints

lab: $(VENV)/.lab-installed $(LAB_OVERRIDES) | $(LAB_NOTEBOOKS)  ## open JupyterLab on the lessons
	JUPYTER_CONFIG_PATH="$(CURDIR)/lab$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	OMP_NUM_THREADS=$(LAB_THREADS) MKL_NUM_THREADS=$(LAB_THREADS) \
	$(BIN)/jupyter lab --notebook-dir=$(LAB_NOTEBOOKS) $(ALLOW_ROOT) $(JUPYTER_ARGS)

lab-fresh:  ## replace the lab's copy of the lessons; the old one is kept as *.old
	rm -rf $(LAB_NOTEBOOKS).old
	if [ -d $(LAB_NOTEBOOKS) ]; then mv $(LAB_NOTEBOOKS) $(LAB_NOTEBOOKS).old; fi
	$(MAKE) --no-print-directory $(LAB_NOTEBOOKS)

app: $(VENV)/.lab-installed  ## the EWC playground as a Voilà app (no code shown), for projecting
	OMP_NUM_THREADS=$(LAB_THREADS) MKL_NUM_THREADS=$(LAB_THREADS) \
	$(BIN)/voila app/playground.ipynb --port=$(APP_PORT) $(APP_ARGS)

demo: $(VENV)/.lab-installed  ## the demo: task A (MNIST), then task B (Fashion-MNIST), without and with EWC
	$(BIN)/ewclab demo
	$(BIN)/ewclab demo --ewc

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .

test: lint  ## ruff, unit tests and every notebook (nbval)
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env tests $(wildcard notebooks/*.ipynb)

$(FLOOR_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOOR_VENV)/bin/python -m pip install --quiet -e ".[test]" $(FLOOR_PINS)
	touch $@

test-floor: $(FLOOR_VENV)/.installed  ## the core unit tests on the oldest torch/torchvision allowed
	OMP_NUM_THREADS=1 $(FLOOR_VENV)/bin/python -m pytest -q -p no:cacheprovider $(FLOOR_TESTS)

bench: $(VENV)/.test-installed  ## rewrite benchmarks/RESULTS.md
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .pytest_cache .ruff_cache .hypothesis
