# Rapport — the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
export RASA_TELEMETRY_ENABLED ?= false
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONWARNINGS ?= ignore::DeprecationWarning

.PHONY: help setup run test validate train test-python test-stories bench-chat bench-loyalty bench-quiz bench-console clean

help:
	@echo "make run         set up, train if the data changed, migrate and seed the demo shop, start the three servers"
	@echo "make test        set up and run every check (validate, pytest, rasa test stories)"
	@echo "make bench-chat  chat latency/throughput against the running stack and a stock rasa init bot"
	@echo "make bench-loyalty  seed 1M customers / 10M ledger entries on SQLite and PostgreSQL, time balance/earn/redeem"
	@echo "make bench-quiz  quiz recommendations (score, filter, rank, reasons) over a generated 10,000-product catalog"
	@echo "make bench-console  seed 100,000 feedback with transcripts, time the console's inbox, search, transcript pages and CSV export"

setup:
	@bash scripts/setup.sh

train: setup
	@$(PY) -m bot train

run: setup
	@$(PY) -m bot run

validate: setup
	@$(PY) -m bot validate

test-python: setup train
	@echo "== pytest"
	@$(PY) -m pytest

test-stories: setup train
	@echo "== rasa test (test stories, --fail-on-prediction-errors)"
	@bash scripts/test_stories.sh

test: validate test-python test-stories
	@echo "== all checks passed"

bench-chat: setup train
	@$(PY) -m bench.chat

bench-loyalty: setup
	@$(PY) -m bench.loyalty

bench-quiz: setup
	@$(PY) -m bench.quiz

bench-console: setup
	@$(PY) -m bench.console

clean:
	rm -rf var results models/*.tar.gz models/*.fingerprint .pytest_cache
