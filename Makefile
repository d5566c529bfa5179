# make demo: the four-province mesh on this machine, end to end.
# make test: lint, type-check and the whole test suite, bootstrapping .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck pytest proto bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/yrd demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

# Regenerate the committed protobuf code from proto/ (tests check it is current).
proto: $(STAMP)
	$(BIN)/python -m node.wire.generate

bench: $(STAMP)
	$(BIN)/python bench/exchange.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
