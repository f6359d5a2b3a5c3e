# Two entry points for a fresh machine: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
GO ?= go
COLLECTOR := collector

.PHONY: setup semconv semconv-check lint typecheck pytest go-check collector-build test demo clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

semconv: setup
	$(PY) semconv/generate.py

semconv-check: setup
	$(PY) semconv/generate.py --check
	$(PY) semconv/check_usage.py

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy --strict src/llmotel

pytest: setup
	$(PY) -m pytest -q -n 2 --dist loadfile

go-check:
	cd $(COLLECTOR) && test -z "$$(gofmt -l . | tee /dev/stderr)"
	cd $(COLLECTOR) && for m in $$(find . -name go.mod -not -path '*/build/*' -exec dirname {} \;); do (cd $$m && $(GO) vet ./... && $(GO) test -race -count=1 ./...) || exit 1; done

test: semconv-check lint typecheck go-check pytest

demo: setup
	$(PY) examples/demo.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
