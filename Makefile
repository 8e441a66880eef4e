# Resguardo — two commands on a fresh clone:
#   make run    installs everything into .venv and starts the server (SQLite, ./data, demo space);
#               PORT=9000 listens on another port
#   make test   runs the whole test suite (installs litmus and PostgreSQL if missing)
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test venv lint bench clean

PORT ?=

run: venv
	$(VENV)/bin/resguardo serve $(if $(PORT),--port $(PORT))

test:
	./scripts/test.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Resguardo needs Python 3.11 or newer"; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || \
		{ echo "Could not create a virtualenv: apt-get install python3-venv"; exit 1; }
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# Resguardo against plain WsgiDAV and Apache mod_dav (installs apache2 when apt-get can):
# a few minutes; writes docs/benchmarks.md. BENCH_ARGS="--quick" for a smoke run.
bench: venv
	@command -v apache2 >/dev/null || test -x /usr/sbin/apache2 || \
		{ test "$$(id -u)" = 0 && apt-get update -qq >/dev/null 2>&1 && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq apache2 >/dev/null 2>&1; } || echo "apache2 no se pudo instalar: el banco lo omitirá"
	$(VENV)/bin/python -m pip install -q -e '.[bench]'
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

lint: venv
	$(VENV)/bin/ruff check spaces davserver resguardo portal tests bench

clean:
	rm -rf $(VENV) build *.egg-info
