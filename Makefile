# StagePass: `make run` serves the app, `make test` runs the whole suite. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := FLASK_APP=wsgi $(BIN)/flask
MARIADB_URL ?= mysql+pymysql://root@127.0.0.1:3306

.PHONY: translations compile-translations run serve venv dev-venv lint format test test-sqlite test-mariadb services migrate seed worker scheduler dev-all clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pybabel compile -d app/translations
	touch $@

## Test and lint tools on top of the app's packages (requirements-dev.txt).
dev-venv: $(VENV)/.installed-dev

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## ruff: the lint rules and the format in pyproject.toml.
lint: dev-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: dev-venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: venv
	mkdir -p instance
	$(FLASK) db upgrade

seed: migrate
	$(FLASK) seed-demo

## Serve the app on http://127.0.0.1:5000 (SQLite unless DATABASE_URL is set), with demo data.
run: seed compile-translations
	$(FLASK) run --host 127.0.0.1 --port 5000

## Production server (gunicorn + gevent, gunicorn.conf.py) against DATABASE_URL and REDIS_URL.
## A SECRET_KEY is generated once into instance/secret_key unless you set one, and likewise a
## ticket signing key into instance/ticket_signing_key unless TICKET_SIGNING_KEYS is set.
serve: migrate compile-translations
	test -n "$$SECRET_KEY" || test -s instance/secret_key || $(BIN)/python -c "import secrets; print(secrets.token_hex(32))" > instance/secret_key
	test -n "$$TICKET_SIGNING_KEYS" || test -s instance/ticket_signing_key || $(BIN)/python -c "import base64, secrets; print('local:' + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b'=').decode())" > instance/ticket_signing_key
	STAGEPASS_ENV=production SECRET_KEY="$${SECRET_KEY:-$$(cat instance/secret_key)}" TICKET_SIGNING_KEYS="$${TICKET_SIGNING_KEYS:-$$(cat instance/ticket_signing_key)}" $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

services:
	bash scripts/ensure-services.sh --browser

## Background work (needs Redis): the RQ worker and rq-scheduler (every-minute cleanup).
worker: migrate
	$(FLASK) rq-worker

scheduler: migrate
	$(FLASK) rq-scheduler

## Web, worker and scheduler together (Ctrl-C stops all three).
dev-all: seed
	bash scripts/dev-all.sh

## Lint (ruff), then the whole suite, once on SQLite and once on a throwaway MariaDB database.
test: dev-venv compile-translations services lint
	@echo "================ test pass 1/2: SQLite ================"
	STAGEPASS_TEST_DB=sqlite $(BIN)/python -m pytest
	@echo "================ test pass 2/2: MariaDB ================"
	STAGEPASS_TEST_DB=mariadb TEST_MARIADB_URL=$(MARIADB_URL) $(BIN)/python -m pytest

test-sqlite: dev-venv compile-translations
	STAGEPASS_TEST_DB=sqlite $(BIN)/python -m pytest $(ARGS)

test-mariadb: dev-venv compile-translations services
	STAGEPASS_TEST_DB=mariadb TEST_MARIADB_URL=$(MARIADB_URL) $(BIN)/python -m pytest $(ARGS)

## Extract every translatable string into app/translations/messages.pot, merge it into the
## German and Spanish catalogues, and compile them (.mo files are built, not committed).
translations: venv
	$(BIN)/pybabel extract -F app/translations/babel.cfg -k lazy_gettext -k _l -o app/translations/messages.pot --no-location --sort-output .
	for lang in de es; do \
	  if [ -f app/translations/$$lang/LC_MESSAGES/messages.po ]; then \
	    $(BIN)/pybabel update -i app/translations/messages.pot -d app/translations -l $$lang --no-fuzzy-matching --ignore-obsolete; \
	  else \
	    $(BIN)/pybabel init -i app/translations/messages.pot -d app/translations -l $$lang; \
	  fi; \
	done
	$(BIN)/pybabel compile -d app/translations

## Compile the German and Spanish catalogues (.po -> .mo); `run` and the test targets do it first.
compile-translations: venv
	$(BIN)/pybabel compile -d app/translations

clean:
	rm -rf $(VENV) .pytest_cache instance/stagepass.sqlite
