# The two commands of the README. Each sets up what it needs (scripts/setup) first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test test-fast setup
setup:
	scripts/setup

# The main job: a small real study on the embedded SQLite default (see README).
run:
	scripts/setup
	scripts/main-job

# Two pytest workers share the 2 cores (many tests wait on other processes: workers,
# heartbeats, a browser); the tests of a real Ray cluster then run on their own.
PYTEST := $(PY) -m pytest -q -p no:cacheprovider
PARALLEL := -n 2 --dist loadgroup

test:
	scripts/setup --test
	$(PYTEST) $(PARALLEL) -m "not ray" tests
	$(PYTEST) -m ray tests

# The suite without the tests marked slow (servers, browsers, clusters, many processes).
test-fast:
	scripts/setup --test
	$(PYTEST) $(PARALLEL) -m "not slow" tests
