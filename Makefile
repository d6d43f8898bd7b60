# Two commands for a fresh clone: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000

.PHONY: install lint test demo demo-port serve clean audit chaos lock fuzz

# Exactly the versions in the lock file, each checked against its hash; then the project itself.
$(STAMP): pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --requirement requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --editable .
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

# DEVTOOLS: the development tools (devtools/) are an app whatever DEBUG says, for the tests
# that run bench_digests and chaos.
test: lint
	DEVTOOLS=true $(BIN)/pytest

# The property-based tests with ten times the examples from a fresh seed (`make test` and CI
# always explore the same ones). The seed is printed: `make fuzz SEED=...` replays a run.
fuzz: install
	@seed=$${SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "make fuzz: hypothesis seed $$seed (replay with: make fuzz SEED=$$seed)"; \
	PAPERBOY_FUZZ=1 $(BIN)/pytest -m hypothesis --hypothesis-seed=$$seed; \
	status=$$?; echo "make fuzz: hypothesis seed $$seed"; exit $$status

# Fault injection on the real pipeline (needs PostgreSQL via DATABASE_URL, and redis-server);
# prints a table and fails on any duplicate, loss or mail to someone who stopped. CI runs it.
CHAOS_SUBSCRIBERS ?= 2000
chaos: install
	DEVTOOLS=true $(BIN)/python manage.py chaos --subscribers $(CHAOS_SUBSCRIBERS)

# After changing the dependencies in pyproject.toml: refresh the lock files (requirements-dev.txt
# for development and CI, requirements.txt, the same versions, for the Docker image), keeping
# every pinned version that still fits. `make lock UPGRADE=1` moves all to the newest allowed.
LOCK := $(BIN)/uv pip compile pyproject.toml --universal --generate-hashes --quiet
lock: install
	$(LOCK) --extra dev $(if $(UPGRADE),--upgrade) --output-file requirements-dev.txt
	$(LOCK) --constraint requirements-dev.txt --output-file requirements.txt

# Known vulnerabilities in the installed dependencies (needs to reach the PyPI/OSV advisory APIs).
audit: install
	$(BIN)/pip-audit --skip-editable

# Set up, import the bundled papers, send demo subscribers a round of digests through a real
# worker, then serve the site with the worker and beat until Ctrl-C. Links in emails and pages
# follow PORT (make demo PORT=8011); a taken port is said first, before any work.
demo: demo-port install
	@$(BIN)/python manage.py serve --demo --port $(PORT)
demo serve: export SITE_URL = http://localhost:$(PORT)

# Bind the port for a moment (Python's standard library only: no .venv needed yet).
PORT_FREE = $(shell $(PYTHON) -c 'import socket, sys; socket.create_server(("127.0.0.1", int(sys.argv[1])))' $(PORT) 2>/dev/null && echo yes)
demo-port:
	$(if $(PORT_FREE),,$(error Port $(PORT) is taken: stop what listens there or run make demo PORT=<another>))

# The site with a worker and beat on the embedded (file system) broker, until Ctrl-C.
serve: install
	@$(BIN)/python manage.py serve --port $(PORT)

clean:
	rm -rf var $(VENV)
