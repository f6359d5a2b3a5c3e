#!/usr/bin/env bash
# Build examples/gateway/build/otelcol-llmotel-agent from builder-agent.yaml with ocb pinned to the same release.
# As in collector/build.sh, ocb only generates the sources (its own `go mod tidy` also resolves test-only
# dependencies the Go module proxy does not serve); the module graph comes from lock/.
set -euo pipefail
cd "$(dirname "$0")"
GO=${GO:-go}
OCB_VERSION=v0.152.0
rm -rf build/src && mkdir -p build
"$GO" run "go.opentelemetry.io/collector/cmd/builder@${OCB_VERSION}" --config builder-agent.yaml --skip-compilation \
    >build/ocb.log 2>&1 || true
cd build/src
[ -f go.mod ] && [ -f components.go ] || { cat ../ocb.log >&2; echo "ocb did not generate the sources" >&2; exit 1; }
# The module graph is locked in lock/go.mod + lock/go.sum (made once by ocb + `go mod tidy -e`): tidy cannot run
# on a fresh machine because the checksum database has no entry for some test-only modules of the contrib exporter,
# which the binary never links. With the lock, `go build` downloads exactly those versions and verifies them.
cp ../../lock/go.mod ../../lock/go.sum .
"$GO" build -trimpath -ldflags='-s -w' -o ../otelcol-llmotel-agent .
echo "built $(cd .. && pwd)/otelcol-llmotel-agent"
