# insitu: two commands.
#   make up    set up and run the whole platform on this machine (embedded default)
#   make test  set up and run the default test suite
.PHONY: setup up test test-all bench clean
VENV := .venv
PY := $(VENV)/bin/python
# compiled Python files go to a cache outside the checkout (nothing the project runs
# writes into its own source tree); the tests' screenshots go to INSITU_TEST_ARTIFACTS
export PYTHONPYCACHEPREFIX ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/insitu/pycache
export HYPOTHESIS_STORAGE_DIRECTORY ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/insitu/hypothesis

setup:
	@bash scripts/setup.sh

up: setup
	$(PY) -m hub up

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest -m '' $(PYTEST_ARGS)

clean:
	rm -rf .setup-stamps /var/lib/insitu
