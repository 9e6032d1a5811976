# insitu: two commands.
#   make up    set up and run the whole platform on this machine (embedded default)
#   make test  set up and run the default test suite
.PHONY: setup up test test-all bench clean
VENV := .venv
PY := $(VENV)/bin/python

setup:
	@bash scripts/setup.sh

up: setup
	$(PY) -m hub up

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest -m '' $(PYTEST_ARGS)

clean:
	rm -rf .setup-stamps var/
