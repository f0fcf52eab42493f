# The two commands of the README. Each sets up what it needs (scripts/setup) first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test setup
setup:
	scripts/setup

# The main job: a small real study on the embedded SQLite default (see README).
run:
	scripts/setup
	scripts/main-job

test:
	scripts/setup --test
	$(PY) -m pytest -q -p no:cacheprovider tests
