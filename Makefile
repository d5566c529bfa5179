# make demo: the four-province mesh on this machine, end to end.
# make test: lint, type-check and the whole test suite, bootstrapping .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck pytest promtool chromium postgresql buildtools proto bench mutation clean

$(STAMP): pyproject.toml | buildtools
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# make demo ARGS="--base-port 7201 --dir demo-mesh/": ARGS go to yrd demo as they are.
ARGS ?=
demo: $(STAMP)
	$(BIN)/yrd demo $(ARGS)

test: lint typecheck pytest

# lint-imports: node's layers import only downward ([tool.importlinter] in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers, a test file each at a time (a file's module fixtures, such as one monitored
# mesh, are made once); YRD_TEST_WORKERS=0 runs everything in this one process.
YRD_TEST_WORKERS ?= 2
pytest: $(STAMP) promtool chromium postgresql
	$(BIN)/pytest -q -n $(YRD_TEST_WORKERS) --dist loadfile

# promtool (Debian package prometheus) checks the alert rules, their unit tests, the scrape
# config and a live node's metrics (tests/test_monitoring_rules.py). Installed when missing and
# possible (root with apt-get). apt waits out slow mirrors and a busy dpkg lock itself, and a
# failed install does not stop make: those tests then skip on a workstation and fail in CI
# (CI=true), naming promtool.
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing promtool (Debian package prometheus)"; \
	    apt_opts="-qq -o Acquire::Retries=5 -o Acquire::http::Timeout=60 -o DPkg::Lock::Timeout=600"; \
	    apt-get $$apt_opts update || echo "warning: apt-get update failed; trying the install anyway"; \
	    DEBIAN_FRONTEND=noninteractive apt-get $$apt_opts install -y --no-install-recommends \
	      prometheus >/dev/null || echo "warning: could not install promtool"; \
	  else \
	    echo "note: promtool is missing and cannot be installed here (needs root and apt-get)"; \
	  fi; \
	}

# PostgreSQL (Debian package postgresql) is the second store backend: tests/postgres.py starts a
# private server of its own (initdb, pg_ctl's postgres) for the store tests. Installed like
# promtool above: when initdb is missing and possible, never failing make; the PostgreSQL tests
# then skip on a workstation and fail in CI (CI=true), naming the missing server.
postgresql:
	@{ command -v pg_config >/dev/null 2>&1 && [ -x "$$(pg_config --bindir)/initdb" ]; } || \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing PostgreSQL (Debian package postgresql)"; \
	    apt_opts="-qq -o Acquire::Retries=5 -o Acquire::http::Timeout=60 -o DPkg::Lock::Timeout=600"; \
	    apt-get $$apt_opts update || echo "warning: apt-get update failed; trying the install anyway"; \
	    DEBIAN_FRONTEND=noninteractive apt-get $$apt_opts install -y --no-install-recommends \
	      postgresql >/dev/null || echo "warning: could not install PostgreSQL"; \
	  else \
	    echo "note: PostgreSQL (initdb) is missing and cannot be installed here (needs root and apt-get)"; \
	  fi; \
	}

# gmalglib (the SM2/SM3 suite) is built from source by pip: it needs a C compiler and the
# Python headers. Installed like promtool when missing and possible; without them pip says so.
buildtools:
	@{ command -v cc >/dev/null 2>&1 && $(PYTHON) -c 'import sysconfig, os, sys; \
	    sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing a C compiler and the Python headers (Debian build-essential, python3-dev)"; \
	    apt_opts="-qq -o Acquire::Retries=5 -o Acquire::http::Timeout=60 -o DPkg::Lock::Timeout=600"; \
	    apt-get $$apt_opts update || echo "warning: apt-get update failed; trying the install anyway"; \
	    DEBIAN_FRONTEND=noninteractive apt-get $$apt_opts install -y --no-install-recommends \
	      build-essential python3-dev >/dev/null || echo "warning: could not install build tools"; \
	  else \
	    echo "note: a C compiler or the Python headers are missing (gmalglib needs them)"; \
	  fi; \
	}

# Chromium (Debian package chromium) renders the operator dashboard in tests/test_dashboard.py,
# with a CJK font (fonts-wqy-microhei) so the province names show in its screenshot. Installed
# like promtool above: when missing and possible, never failing make; the test then skips on a
# workstation and fails in CI (CI=true), naming chromium.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (Debian packages chromium, fonts-wqy-microhei)"; \
	    apt_opts="-qq -o Acquire::Retries=5 -o Acquire::http::Timeout=60 -o DPkg::Lock::Timeout=600"; \
	    apt-get $$apt_opts update || echo "warning: apt-get update failed; trying the install anyway"; \
	    DEBIAN_FRONTEND=noninteractive apt-get $$apt_opts install -y --no-install-recommends \
	      chromium fonts-wqy-microhei >/dev/null || echo "warning: could not install chromium"; \
	  else \
	    echo "note: chromium is missing and cannot be installed here (needs root and apt-get)"; \
	  fi; \
	}

# Regenerate the committed protobuf code from proto/ (tests check it is current).
proto: $(STAMP)
	$(BIN)/python -m node.wire.generate

bench: $(STAMP)
	$(BIN)/python bench/exchange.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache mutants mutants.log

# make mutation: mutmut over the protocol and lifecycle cores ([tool.mutmut] in pyproject.toml),
# each mutant run against the unit tests that cover it; prints the kill rate per module and
# fails under 90%. Minutes on 2 cores, so not part of make test. Survivors: mutmut show NAME.
mutation: $(STAMP)
	rm -rf mutants
	$(BIN)/mutmut run > mutants.log 2>&1 || { tail -40 mutants.log; exit 1; }
	$(BIN)/python bench/mutation_score.py

