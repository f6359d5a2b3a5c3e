#!/usr/bin/env bash
# Build collector/build/otelcol-llmotel from builder-config.yaml with the ocb pinned in tools/go.mod
# (the steps, and why not plain `ocb`, are in ocb-build.sh).
set -euo pipefail
cd "$(dirname "$0")"
exec ./ocb-build.sh builder-config.yaml build/otelcol-llmotel
