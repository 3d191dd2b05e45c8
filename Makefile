# paradox — the two commands are `make book` and `make test`; `make help` lists all.
# Every target sets itself up: a missing or stale .venv is (re)built first.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
STAMP := $(VENV)/.installed-stamp
ARGS ?=
REMOTE ?= origin

.PHONY: help setup book population test test-fast test-unit lint bench lab publish browser slurm clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: PROFILE=tiny|quick|laptop|paper-smoke|paper|imagenet (book), ARGS='...' (extra pytest/run/lab args), REMOTE=origin (publish)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the package with its pinned dependencies

book: setup  ## run the six chapters for PROFILE (default quick) and build the Jupyter Book
	$(PY) -m paradox_utils run --profile $(PROFILE) $(ARGS)
	$(PY) -m paradox_utils book
	@echo "The book: book/_build/html/index.html"

population: setup  ## list PROFILE's networks and what they cost, training nothing (ARGS='--csv FILE')
	$(PY) -m paradox_utils population --profile $(PROFILE) $(ARGS)

browser:  ## install Debian's chromium for the browser test when missing (root + apt; under CI=true a failure stops)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	      && command -v chromium >/dev/null) || problem="could not install chromium with apt-get"; \
	  else problem="chromium is missing and not installable here (needs root and apt-get)"; fi; \
	  if [ -n "$${problem:-}" ]; then \
	    if [[ "$${CI,,}" =~ ^(1|true|yes)$$ ]]; then \
	      echo "$$problem; CI=true: the browser test must run, not be skipped" >&2; exit 1; fi; \
	    echo "$$problem: the browser test will be skipped"; fi; }

slurm:  ## install Debian's SLURM and munge for the SLURM test when missing (root + apt; under CI=true a failure stops)
	@for c in munged slurmctld slurmd sbatch; do command -v $$c >/dev/null 2>&1 || missing=1; done; \
	if [ -n "$${missing:-}" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      slurmctld slurmd munge slurm-client >/dev/null && command -v slurmctld >/dev/null) \
	      || problem="could not install SLURM with apt-get"; \
	  else problem="SLURM is missing and not installable here (needs root and apt-get)"; fi; \
	  if [ -n "$${problem:-}" ]; then \
	    if [[ "$${CI,,}" =~ ^(1|true|yes)$$ ]]; then \
	      echo "$$problem; CI=true: the SLURM test must run, not be skipped" >&2; exit 1; fi; \
	    echo "$$problem: the SLURM test will be skipped"; fi; fi

test: setup browser slurm  ## the whole test suite: the six chapters' smoke run, the browser and scale-out tests
	$(PY) -m pytest $(ARGS)

test-fast: setup  ## the tests that take under a few seconds each (not slow): under 3 minutes
	$(PY) -m pytest -m "not slow" $(ARGS)

test-unit: setup  ## unit tests that need no data on disk (not slow, not data)
	$(PY) -m pytest -m "not slow and not data" $(ARGS)

lint: setup  ## ruff
	$(PY) -m ruff check paradox_utils tests benchmarks notebooks book/_ext

bench: setup  ## the benchmarks (each prints ratios measured in one run); the book's page loads once it is built
	@for b in $(filter-out benchmarks/bench_book.py,$(wildcard benchmarks/bench_*.py)); do \
		echo "== $$b"; PYTHONPATH=. $(PY) $$b || exit 1; done
	@if [ -f book/_build/html/index.html ]; then echo "== benchmarks/bench_book.py"; \
		PYTHONPATH=. $(PY) benchmarks/bench_book.py; else echo "== benchmarks/bench_book.py: no built book (make book)"; fi

lab: setup  ## JupyterLab on notebooks/: chapters open as notebooks, paired with git-ignored .ipynb
	$(PY) -m paradox_utils lab $(ARGS)

publish: setup  ## put the built book on the gh-pages branch of REMOTE (default origin), with ghp-import
	$(PY) -m paradox_utils publish --remote $(REMOTE)

clean:  ## remove the built book and executed chapters (keeps data and checkpoints)
	rm -rf book/_build book/chapters
