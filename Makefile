# Two commands set everything up on a fresh Debian machine: `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

HOST ?= 127.0.0.1
PORT ?= 8000

VENV := .venv
PYTHON := $(VENV)/bin/python
PIP := $(PYTHON) -m pip --disable-pip-version-check -q
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
TIER := bash scripts/pytest_tier.sh

.PHONY: run test lint stack bench clean

# Debian's python3 needs python3-venv for `python3 -m venv`; pip is the sign that a venv is whole.
$(VENV)/bin/pip:
	python3 -m venv $(VENV) || { \
		echo "python3 -m venv failed: installing python3-venv"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv && python3 -m venv $(VENV); }

# Stamp files: pip runs again only when a requirements file changed.
$(VENV)/.installed: requirements.txt | $(VENV)/bin/pip
	$(PIP) install -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(VENV)/bin/pip
	$(PIP) install -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	$(PYTHON) manage.py migrate --noinput
	$(PYTHON) manage.py seed_demo
	$(PYTHON) manage.py collectstatic --noinput
	$(VENV)/bin/daphne -e tcp:port=$(PORT):interface=$(HOST):backlog=4096 \
		--websocket_timeout -1 --websocket_connect_timeout 30 treasurehunt.asgi:application

# Every tier, in order; tiers are chosen in conftest.py (TEST_TIER, RUN_BROWSER, RUN_BENCH).
test: $(VENV)/.installed-dev
	bash scripts/ensure_services.sh
	bash scripts/ensure_chromium.sh
	$(PYTHON) -m playwright --version
	$(PYTHON) manage.py check
	rm -f test-artifacts/junit-*.xml
	$(TIER) fast
	TEST_TIER=integration $(TIER) integration
	RUN_BROWSER=1 $(TIER) browser -m browser
	RUN_BENCH=1 $(TIER) bench -m bench
	$(TIER) --total

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PYTHON) manage.py makemigrations --check --dry-run
	$(PYTHON) manage.py spectacular --validate --fail-on-warn --file /dev/null

# Production-like stack on one machine (README, "Production stack"): PostgreSQL and Redis from DATABASE_URL
# and REDIS_URL (environment or .env), WEB daphne processes on STACK_PORT, STACK_PORT+1, ... behind
# deploy/nginx.conf, JUDGE judge workers, one treasure worker, the clock worker and beat.
WEB ?= 2
JUDGE ?= 1
STACK_PORT ?= 8001

stack: $(VENV)/.installed
	@url() { [ -n "$${!1:-}" ] || grep -qs "^$$1=." .env; }; \
	url DATABASE_URL || { echo "make stack: DATABASE_URL is not set (e.g. postgres://USER:PASSWORD@127.0.0.1:5432/treasurehunt)" >&2; exit 1; }; \
	url REDIS_URL || { echo "make stack: REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)" >&2; exit 1; }
	$(PYTHON) manage.py check
	$(PYTHON) manage.py migrate --noinput
	$(PYTHON) manage.py collectstatic --noinput
	BEAT_SCHEDULE="$$(mktemp -d)/celerybeat-schedule" exec $(VENV)/bin/honcho start -f deploy/Procfile \
		-p $(STACK_PORT) -c web=$(WEB),judge=$(JUDGE)

# Load benchmark (BENCHMARKS.md): `make bench`, or e.g. `make bench SOCKETS=500 RATE=100 DURATION=10`;
# MODE=embedded runs one daphne on SQLite with the in-memory layer (informative). BENCH_ARGS passes more
# options of bench/run.py (--storm, --cycles, --ramp-step, --no-pin, --profile, ...).
SOCKETS ?= 2000
RATE ?= 200
DURATION ?= 20
MODE ?= production
BENCH_ARGS ?=
bench: $(VENV)/.installed-dev
	bash scripts/ensure_services.sh
	$(PYTHON) -m bench.run --mode $(MODE) --sockets $(SOCKETS) --rate $(RATE) --duration $(DURATION) $(BENCH_ARGS)

clean:
	rm -rf staticfiles test-artifacts .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
