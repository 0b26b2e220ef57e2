# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed

.PHONY: install browser demo airflow test lint typecheck unit benchmark clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "uv>=0.9"
	$(UV) pip install --quiet --python $(PY) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m sanitizer.demo

# The demo's Airflow with its DAGs, runs and review tasks in the UI (after `make demo`):
# http://localhost:8080, the admin password is printed by `airflow standalone`.
airflow: $(STAMP)
	test -d demo-output/airflow-home || $(MAKE) demo
	AIRFLOW_HOME=$(CURDIR)/demo-output/airflow-home AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags SANITIZER_CONFIG_DIR=$(CURDIR)/demo-output/configs \
	$(VENV)/bin/airflow standalone

lint: $(STAMP)
	$(VENV)/bin/ruff check sanitizer dags tests benchmarks
	$(VENV)/bin/ruff format --check sanitizer dags tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Debian's Chromium for the report's browser test (skipped, with the reason, when absent).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; } || echo "make: chromium not installed; the browser test will be skipped"

unit: $(STAMP) browser
	$(PY) -m pytest -q -p no:cacheprovider -rs

test: lint typecheck unit

benchmark: $(STAMP)
	$(PY) benchmarks/detection.py

clean:
	rm -rf $(VENV) demo-output test-artifacts .pytest_cache .mypy_cache .ruff_cache
