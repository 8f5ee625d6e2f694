# Rapport — the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
export RASA_TELEMETRY_ENABLED ?= false
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONWARNINGS ?= ignore::DeprecationWarning

.PHONY: help setup run run-cluster chaos test validate train test-python test-stories eval-nlu bench-chat bench-loyalty bench-quiz bench-console bench-predict bench-webhooks bench-segments clean

help:
	@echo "make run         set up, train if the data changed, migrate and seed the demo shop, start the three servers"
	@echo "make run-cluster the scaled-out layout: 2 Rasa servers, 2 action servers, 2 web apps behind HAProxy, PostgreSQL, Redis"
	@echo "make chaos       a bounded fault run (< 3 min) on the scaled-out layout under chat and store-API load"
	@echo "make test        set up and run every check (validate, pytest, rasa test stories)"
	@echo "make eval-nlu    the trained model on the held-out messages (tests/nlu/heldout): accuracy, off-topic recall, confusions"
	@echo "make bench-chat  chat latency/throughput against the running stack and a stock rasa init bot"
	@echo "make bench-loyalty  seed 1M customers / 10M ledger entries on SQLite and PostgreSQL, time balance/earn/redeem"
	@echo "make bench-quiz  quiz recommendations (score, filter, rank, reasons) over a generated 10,000-product catalog"
	@echo "make bench-console  seed 100,000 feedback with transcripts, time the console's inbox, search, transcript pages and CSV export"
	@echo "make bench-webhooks  Shopify webhook intake (p99 acknowledgement at 50 concurrent deliveries) and apply throughput"
	@echo "make bench-segments  bulk-load 1M customers with orders and predictions into PostgreSQL, time every built-in segment's count"
	@echo "make bench-predict  repeat-purchase backtest on CDNOW (imported with python -m bot import) vs BG/NBD and recency; fit+score 1M customers"

setup:
	@bash scripts/setup.sh

train: setup
	@$(PY) -m bot train

run: setup
	@$(PY) -m bot run

run-cluster: setup
	@$(PY) -m bot run --replicas $${REPLICAS:-2}

chaos: setup train
	@$(PY) -m bench.chaos

validate: setup
	@$(PY) -m bot validate

# What the three checks below need first; `make test` has done it already when it starts them (CHECK_PREREQS=).
CHECK_PREREQS := setup train

test-python: $(CHECK_PREREQS)
	@echo "== pytest"
	@$(PY) -m pytest

test-stories: $(CHECK_PREREQS)
	@echo "== rasa test (test stories, --fail-on-prediction-errors)"
	@bash scripts/test_stories.sh

eval-nlu: $(CHECK_PREREQS)
	@echo "== held-out NLU evaluation (tests/nlu/heldout; fails below the CI bars)"
	@$(PY) -m tests.nlu.evaluate --check --json var/eval-nlu.json

# Once the data is valid and the model trained, pytest, the test stories and the held-out evaluation depend on
# nothing of each other's: they run side by side (the stories and the evaluation, each loading the model, take
# about ten minutes that would otherwise follow pytest's). Each check's output is printed whole when it ends;
# any failing check fails `make test`.
test: validate train
	@$(MAKE) --no-print-directory -j3 --output-sync=target CHECK_PREREQS= test-python test-stories eval-nlu
	@echo "== all checks passed"

bench-chat: setup train
	@$(PY) -m bench.chat

bench-loyalty: setup
	@$(PY) -m bench.loyalty

bench-quiz: setup
	@$(PY) -m bench.quiz

bench-console: setup
	@$(PY) -m bench.console

bench-predict: setup
	@$(PY) -m bench.predict

bench-segments: setup
	@$(PY) -m bench.segments

bench-webhooks: setup
	@$(PY) -m bench.webhooks

clean:
	rm -rf var results models/*.tar.gz models/*.fingerprint .pytest_cache
