# Two entry points for a fresh machine: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
GO ?= go
COLLECTOR := collector

.PHONY: setup semconv semconv-check mdatagen lint typecheck pytest unit test-fairness test-tier old-sdk bench-real go-check go-fuzz fuzz collector-build collector-validate ocb-example ocb-example-release test demo clean prometheus

# The collector distribution (ocb-built, see collector/README.md). Rebuilt only when its inputs change.
COLLECTOR_BIN := $(COLLECTOR)/build/otelcol-llmotel
CONNECTOR_INPUTS := $(shell find $(COLLECTOR)/llmsliconnector -name '*.go' -not -name '*_test.go') \
	$(COLLECTOR)/llmsliconnector/go.mod $(COLLECTOR)/llmsliconnector/go.sum \
	$(COLLECTOR)/tools/go.mod $(COLLECTOR)/ocb-build.sh
PROCESSOR_INPUTS := $(shell find $(COLLECTOR)/llmphasesprocessor -name '*.go' -not -name '*_test.go') \
	$(COLLECTOR)/llmphasesprocessor/go.mod $(COLLECTOR)/llmphasesprocessor/go.sum
COLLECTOR_INPUTS := $(CONNECTOR_INPUTS) $(PROCESSOR_INPUTS) $(COLLECTOR)/builder-config.yaml $(COLLECTOR)/build.sh
COLLECTOR_CONFIGS ?= $(wildcard $(COLLECTOR)/config/*.yaml)
# Counts, not durations: a duration -fuzztime races Go's fuzz coordinator at its deadline and fails with a bare
# "context deadline exceeded" and no crasher (golang/go#75804, fixed in Go 1.27; CI failed so on go1.26.8).
# 50,000 inputs take ~7-20 s on a 2-core machine.
FUZZTIME ?= 50000x

$(VENV)/.installed: pyproject.toml sim/pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e ./sim
	touch $@

setup: $(VENV)/.installed

semconv: setup
	$(PY) semconv/generate.py

semconv-check: setup
	$(PY) semconv/generate.py --check
	$(PY) semconv/check_usage.py
	$(COLLECTOR)/mdatagen.sh --check
	$(PY) -m pytest -q -p no:cacheprovider semconv/test_generate.py

# The collector component's generated metadata and tests (mdatagen, pinned in collector/tools).
mdatagen:
	$(COLLECTOR)/mdatagen.sh

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy --strict src/llmotel

pytest: setup collector-build prometheus
	$(PY) -m pytest -q -n 2 --dist loadfile

# Every test that needs neither the collector build nor Prometheus (markers set by directory in tests/conftest.py).
unit: setup
	$(PY) -m pytest -q -n 2 --dist loadfile -m 'not collector and not prometheus'

# The gateway tier under faults (tests/tier, docs/reliability.md): agent tier -> 3 gateways + a reference, the real
# binaries on loopback, one case at a time (each starts six processes and needs both cores); 7 cases, ~5.5 minutes here.
# LLMOTEL_TIER_RESULTS=FILE appends each case's figures to FILE (JSON lines).
test-tier: setup collector-build prometheus
	LLMOTEL_TIER=1 $(PY) -m pytest -q -p no:cacheprovider -s tests/tier

# Fairness scenarios (tests/fairness, issue 18): the SDK, the real binary, Prometheus and the simulator's truth, run
# alone (~2.5 minutes here) for the reason in tests/fairness/conftest.py.
test-fairness: setup collector-build prometheus
	LLMOTEL_FAIRNESS=1 $(PY) -m pytest -q -p no:cacheprovider tests/fairness

# The oldest clients pyproject.toml promises (the lower bounds of the openai / anthropic extras, installed exactly),
# in their own venv next to the SDK and the simulator: tests/providers/*/old_sdk_smoke.py must pass on them.
OLD_VENV ?= .venv-old
OLD_CLIENTS := $(shell sed -nE 's/^(openai|anthropic) = \["(openai|anthropic)>=([0-9.]+)"\]$$/\2==\3/p' pyproject.toml)

$(OLD_VENV)/.installed: pyproject.toml sim/pyproject.toml
	@test "$(words $(OLD_CLIENTS))" = 2 || { echo "old-sdk: no openai/anthropic lower bounds in pyproject.toml" >&2; exit 1; }
	python3 -m venv --clear $(OLD_VENV)
	$(OLD_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OLD_VENV)/bin/python -m pip install --quiet -e . -e ./sim $(OLD_CLIENTS)
	touch $@

old-sdk: $(OLD_VENV)/.installed
	$(OLD_VENV)/bin/python tests/providers/openai/old_sdk_smoke.py
	$(OLD_VENV)/bin/python tests/providers/anthropic/old_sdk_smoke.py

# Phase estimates against a real llama.cpp server (bench/real/README.md): builds llama-server from the
# llama-cpp-python sdist once (~12 min on 2 cores), runs every workload (~11 min), rewrites the recordings that
# `make test` replays. Not part of `make test`.
bench-real: setup
	$(PY) bench/real/harness.py $(ARGS)

go-check:
	cd $(COLLECTOR) && test -z "$$(gofmt -l . | grep -v '^build/' | tee /dev/stderr)"
	cd $(COLLECTOR) && for m in $$(find . -name go.mod -not -path '*/build/*' -not -path './tools/*' -exec dirname {} \;); do (cd $$m && $(GO) vet ./... && $(GO) test -race -count=1 ./...) || exit 1; done

# A short, bounded fuzz run of span ingestion (the corpus in testdata/fuzz runs in go-check too).
go-fuzz:
	cd $(COLLECTOR)/llmsliconnector && $(GO) test -run '^$$' -fuzz '^FuzzConsumeTraces$$' -fuzztime $(FUZZTIME) .

# The long fuzz runs (docs/reliability.md): random hypothesis examples over the SDK's readers and span building,
# peak RSS over many distinct keys (also with the OTLP endpoint down), then a longer go fuzz of span ingestion.
# Writes the "reliability" section of bench/RESULTS.md.
FUZZ_EXAMPLES ?= 5000
FUZZ_CALLS ?= 100000
LONG_FUZZTIME ?= 4000000x
fuzz: setup
	$(PY) bench/reliability.py --examples $(FUZZ_EXAMPLES) --calls $(FUZZ_CALLS)
	$(MAKE) go-fuzz FUZZTIME=$(LONG_FUZZTIME)

$(COLLECTOR_BIN): $(COLLECTOR_INPUTS)
	GO=$(GO) $(COLLECTOR)/build.sh

collector-build: $(COLLECTOR_BIN)

# Every shipped collector config must pass the binary's own validation.
collector-validate: collector-build
	for f in $(COLLECTOR_CONFIGS); do echo "validate $$f"; $(COLLECTOR_BIN) validate --config $$f || exit 1; done

# A user's own distribution: examples/ocb/manifest.yaml (otlp receiver, batch, llm_sli, prometheus exporter) built
# the way a user builds it, plain `ocb --config manifest.yaml` (the ocb pinned in collector/tools, the connector from
# this checkout through the manifest's `replaces`), then examples/ocb/config.yaml checked by the binary's `validate`.
OCB := $(COLLECTOR)/build/ocb
OCB_EXAMPLE := examples/ocb
OCB_EXAMPLE_BIN := $(OCB_EXAMPLE)/build/src/otelcol-llm-example
$(OCB): $(COLLECTOR)/tools/go.mod $(COLLECTOR)/tools/go.sum
	$(GO) -C $(COLLECTOR)/tools build -o $(CURDIR)/$@ go.opentelemetry.io/collector/cmd/builder

$(OCB_EXAMPLE_BIN): $(CONNECTOR_INPUTS) $(OCB_EXAMPLE)/manifest.yaml $(OCB)
	cd $(OCB_EXAMPLE) && mkdir -p build && $(CURDIR)/$(OCB) --config manifest.yaml >build/ocb.log 2>&1 || { cat build/ocb.log >&2; exit 1; }

ocb-example: $(OCB_EXAMPLE_BIN)
	$(OCB_EXAMPLE_BIN) validate --config $(OCB_EXAMPLE)/config.yaml && echo "$(OCB_EXAMPLE_BIN): config.yaml is valid"

# The same manifest moved to another collector release (every module and ocb itself), e.g. the newest one the module
# proxy serves: `make ocb-example-release OCB_RELEASE=v0.165.0 OCB_STABLE=v1.71.0` (examples/ocb/README.md). Built with
# collector/ocb-build.sh, which tolerates test-only modules the proxy may not serve for that release.
OCB_BASE_RELEASE := $(shell sed -nE 's/.*otlpreceiver (v[0-9.]+).*/\1/p' $(OCB_EXAMPLE)/manifest.yaml)
OCB_BASE_STABLE := $(shell sed -nE 's/.*envprovider (v[0-9.]+).*/\1/p' $(OCB_EXAMPLE)/manifest.yaml)
OCB_RELEASE ?= v0.165.0
OCB_STABLE ?= v1.71.0
ocb-example-release:
	mkdir -p $(OCB_EXAMPLE)/build/$(OCB_RELEASE)
	sed -e 's/$(OCB_BASE_RELEASE)/$(OCB_RELEASE)/g; s/$(OCB_BASE_STABLE)/$(OCB_STABLE)/g; s#output_path: [^ ]*#output_path: ./src#' \
	  -e 's#=> .*/collector/llmsliconnector#=> $(CURDIR)/$(COLLECTOR)/llmsliconnector#' \
	  $(OCB_EXAMPLE)/manifest.yaml >$(OCB_EXAMPLE)/build/$(OCB_RELEASE)/manifest.yaml
	OCB_VERSION=$(OCB_RELEASE) GO=$(GO) $(COLLECTOR)/ocb-build.sh $(OCB_EXAMPLE)/build/$(OCB_RELEASE)/manifest.yaml \
	  $(OCB_EXAMPLE)/build/$(OCB_RELEASE)/otelcol-llm-example
	$(OCB_EXAMPLE)/build/$(OCB_RELEASE)/otelcol-llm-example validate --config $(OCB_EXAMPLE)/config.yaml

test: semconv-check lint typecheck go-check go-fuzz collector-validate ocb-example pytest test-fairness test-tier old-sdk

demo: setup collector-build prometheus
	$(PY) examples/demo.py $(ARGS)

# The Debian package's Prometheus (2.42 on bookworm); installed with apt when missing and we are root.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	  else echo "prometheus is missing: sudo apt-get install prometheus" >&2; exit 1; fi; }

clean:
	rm -rf $(VENV) $(OLD_VENV) .pytest_cache .mypy_cache .ruff_cache
