# landmarks: two commands. `make report` regenerates the report (cpu profile); `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MPLBACKEND := Agg
PROFILE ?= cpu

.PHONY: install report test lint smoke export clean-nbs lab bench rehearse

install: $(STAMP)

$(STAMP): requirements.txt setup.py settings.ini tools/patch_nbdev.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	$(PY) tools/patch_nbdev.py
	@touch $@

report: install
	$(PY) -m landmarks.cli report --profile $(PROFILE)

smoke: install
	$(PY) -m landmarks.cli report --profile smoke

# the gld profile rehearsed on a GLD v2 miniature fetched from a loopback bucket (minutes on 2 cores), then checked
rehearse: install
	$(PY) -m landmarks.cli report --profile gld-mini
	$(PY) tools/check_rehearsal.py reports/gld-mini

test: install
	$(PY) tools/run_tests.py

lint: install
	$(VENV)/bin/ruff check --select E501,E702,E703,F401 --line-length 120 landmarks/ benchmarks/ tools/ tests/

export: install
	$(VENV)/bin/nbdev_export && $(VENV)/bin/nbdev_clean

lab: install
	$(VENV)/bin/jupyter lab nbs/

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
