#!/usr/bin/env bash
# Build collector/build/otelcol-llmotel with the pinned ocb (tools/go.mod).
# ocb's own `go mod tidy` fails here: it also resolves the test-only dependencies of contrib modules,
# some of which the Go module proxy does not serve. So ocb only generates the sources, and we tidy
# with -e (tolerating those test-only modules, which the binary never links) and build ourselves.
set -euo pipefail
cd "$(dirname "$0")"
GO=${GO:-go}
rm -rf build/src && mkdir -p build
# ocb writes go.mod and the sources, then fails in its tidy step; its log is kept for diagnosis.
(cd tools && "$GO" tool builder --config ../builder-config.yaml --skip-compilation) >build/ocb.log 2>&1 || true
cd build/src
[ -f go.mod ] && [ -f components.go ] || { cat ../ocb.log >&2; echo "ocb did not generate the sources" >&2; exit 1; }
# The connector's go.sum already holds verified hashes of its test-only modules; reuse them rather
# than asking the checksum database again.
cat ../../llmsliconnector/go.sum >>go.sum
"$GO" mod tidy -e >/dev/null 2>tidy.log || { cat tidy.log >&2; exit 1; }
"$GO" build -trimpath -ldflags='-s -w' -o ../otelcol-llmotel .
echo "built $(cd .. && pwd)/otelcol-llmotel"
