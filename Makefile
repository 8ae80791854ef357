# Two commands: `make run` starts the platform on SQLite; `make test` sets up and runs the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= ./.modeldeck
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: setup run test test-sqlite test-postgres lint bench clean

$(BIN)/modeldeck: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/modeldeck

setup: $(BIN)/modeldeck

run: setup
	$(BIN)/modeldeck server --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

test: setup lint test-sqlite test-postgres

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test-sqlite: setup
	$(BIN)/pytest -q -p no:cacheprovider

# The store-facing suites again, against a real PostgreSQL.
test-postgres: setup
	MODELDECK_TEST_DATABASE_URL=$(PG_URL) $(BIN)/pytest -q -p no:cacheprovider -m "not slow" tests/api tests/controller

clean:
	rm -rf $(VENV) .modeldeck .pytest_cache .mypy_cache
