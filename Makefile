# The two commands of the quick start: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Each stamp names what was installed and the lock files' checksum, so an edited lock installs again.
RUNTIME_STAMP := $(VENV)/.installed-runtime-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
DEV_STAMP := $(VENV)/.installed-dev-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
STRIPE_DOUBLE_PORT ?= 12111

.PHONY: run test lint format bench install install-dev migrate seed check-deploy clean stack stack-check stack-tools faults

# Create the virtualenv and install the pinned packages: the runtime's for running the product
# (requirements.txt), and the test and lint tools on top for make test (requirements-dev.txt).
$(RUNTIME_STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-runtime-* && touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-dev-* && touch $@

install: $(RUNTIME_STAMP)

install-dev: $(DEV_STAMP)

migrate: install
	$(BIN)/python manage.py migrate --no-input

seed: migrate
	$(BIN)/python manage.py seed_demo

## make run — install, migrate, load the demo and serve on http://127.0.0.1:8000
# With no STRIPE_SECRET_KEY, payments go to the offline Stripe double (stripe_double/),
# started beside the server and stopped with it; its keys are the dev settings' (sigora/settings/dev.py).
# Once it answers, the catalog is synced into it and the demo workspace subscribes there (seed_demo
# --subscribe: again after each restart, as the double keeps its state in memory).
# Ctrl-C, SIGTERM or SIGHUP to the group stops all of it before make returns: the shell waits for
# runserver (which stops the embedded PostgreSQL if it was its last user), then stops the double and
# waits for it too, so the ports are free and a second `make run` starts cleanly.
run: seed
	@echo "Serving on http://$(HOST):$(PORT)/  (Ctrl-C to stop)"
	@if [ -n "$$STRIPE_SECRET_KEY" ]; then exec $(BIN)/python manage.py runserver $(HOST):$(PORT); fi; \
	echo "Payments: the offline Stripe double on http://127.0.0.1:$(STRIPE_DOUBLE_PORT)/ (no STRIPE_SECRET_KEY set)"; \
	$(BIN)/python -m stripe_double --host 127.0.0.1 --port $(STRIPE_DOUBLE_PORT) \
		--api-key sk_test_offline_double --webhook-secret whsec_offline_double_dev_only \
		--webhook-url http://$(HOST):$(PORT)/stripe/webhook/ & double=$$!; \
	trap 'kill $$double 2>/dev/null; wait $$double' EXIT; trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM; \
	export STRIPE_DOUBLE_URL=http://127.0.0.1:$(STRIPE_DOUBLE_PORT); \
	$(BIN)/python manage.py sync_stripe_catalog --wait 15 && \
	$(BIN)/python manage.py seed_demo --subscribe --site http://$(HOST):$(PORT) && \
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

## make test — lint and the whole test suite
test: install-dev lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## make bench — the performance benchmarks, each printing ratios against a ceiling it measures
# By name: the other bench/ modules are what they import or serve (tests/test_project.py keeps the list whole).
BENCHMARKS := bench/api.py bench/charge.py bench/pages.py bench/pgbouncer.py bench/resets.py
bench: migrate stack-tools
	@set -e; for f in $(BENCHMARKS); do echo "== $$f"; $(BIN)/python "$$f"; done

## make stack — the production topology on this machine (docs/stack.md): a PostgreSQL primary and a
# streaming replica, PgBouncer, two app nodes behind HAProxy on http://127.0.0.1:$(STACK_HTTP_PORT)/, Redis,
# two Celery workers and one beat, with production settings. Ctrl-C or SIGTERM stops all of it.
STACK_HTTP_PORT ?= 8080
stack: install stack-tools
	STACK_HTTP_PORT=$(STACK_HTTP_PORT) exec $(BIN)/python -m stack

## make faults — the stack under load from 16 clients while an app node, PgBouncer, PostgreSQL, a Celery
# worker (mid reset pass) and Redis are killed or restarted; then no credit lost or counted twice (docs/stack.md).
# FAULTS_ARGS=--bounded is CI's size (tests/stack/test_faults.py); --duration SECONDS for a longer run.
FAULTS_ARGS ?=
faults: install stack-tools
	$(BIN)/python -m stack.faults $(FAULTS_ARGS)

# Start the stack, charge once through the balancer, see the replica replay it, stop it, nothing left.
stack-check: install-dev stack-tools
	$(BIN)/python -m pytest -p no:cacheprovider -m slow tests/stack/

# Debian's PgBouncer and HAProxy, installed here when missing (never by hand only): CI runs this too.
stack-tools:
	@command -v pgbouncer >/dev/null && command -v haproxy >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer haproxy)

check-deploy: install
	DJANGO_SETTINGS_MODULE=sigora.settings.production SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))') \
		ALLOWED_HOSTS=billing.example.com BYOK_ENCRYPTION_KEYS=$$($(BIN)/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
		$(BIN)/python manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache .hypothesis
