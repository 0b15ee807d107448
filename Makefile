# The two set-up commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test lint typecheck bench clean install install-test services

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: setup.py $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.py $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## make run: the examples bot under gunicorn on 127.0.0.1:8000 (development credentials
## unless STREAM_API_KEY/STREAM_API_SECRET are set).
run: install
	@echo "botkit examples bot on http://127.0.0.1:8000"
	@echo "  custom commands: http://127.0.0.1:8000/webhooks/stream/custom-commands?type={type}"
	@echo "  playground:      http://127.0.0.1:8000/playground"
	BOTKIT_DEV=1 BOTKIT_PLAYGROUND=$${BOTKIT_PLAYGROUND:-1} BOTKIT_BIND=127.0.0.1:8000 \
		$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## make test: lint, types and the whole suite; starts what the tests need (redis-server).
test: install-test
	$(BIN)/ruff check botkit tests examples benchmarks
	$(BIN)/mypy botkit
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check botkit tests examples benchmarks
	$(BIN)/ruff format --check botkit tests examples

typecheck: install-test
	$(BIN)/mypy botkit tests/type_check

bench: install-test
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis instance
