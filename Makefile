# Two entry points: `make demo` (set up + a short run with plots) and `make test`.
# TORCH can be overridden, e.g. `make test TORCH=torch` for the newest release (CUDA build on
# Linux) or `TORCH="torch --index-url https://download.pytorch.org/whl/cpu"`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# A short Novelty Search run on HardMaze (about 1 minute on a 2-core CPU); it replaces runs/demo.
DEMO_BUDGET ?= 20000
demo: $(STAMP)
	rm -rf runs/demo
	$(VENV)/bin/qd run ns --env hardmaze --budget $(DEMO_BUDGET) --seed 0 --out runs/demo
	$(VENV)/bin/qd inspect runs/demo
	@echo "plots: runs/demo/plots/*.png"

lint: $(STAMP)
	$(VENV)/bin/ruff check qd envs tests examples benchmarks mkdocs_hooks.py

# The docs site (mkdocs.yml) into site/; --strict fails on any broken link or docstring warning.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

test: $(STAMP) lint docs
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
