#!/usr/bin/env bash
# Build a collector distribution from an ocb manifest that includes the llm_sli connector from this checkout:
#   collector/ocb-build.sh MANIFEST BINARY
# ocb (the Collector Builder) generates the sources into the manifest's dist.output_path, resolved, as ocb does,
# against the directory it runs in: the manifest's own directory. BINARY is where the executable goes.
# OCB_VERSION unset: the ocb pinned in tools/go.mod; set (e.g. v0.165.0): that release of ocb, for building a
# manifest of another collector release (examples/ocb/README.md, "Other releases").
#
# Why not plain `ocb --config MANIFEST`: ocb's own `go mod tidy` also resolves the *test-only* dependencies of the
# collector modules, some of which the Go module proxy does not serve, and fails. So ocb only generates the
# sources; we seed go.sum with the connector's verified hashes, tidy with -e (tolerating those test-only modules,
# which the binary never links) and build with -trimpath.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 MANIFEST BINARY" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
manifest_dir=$(cd "$(dirname "$1")" && pwd)
manifest="$manifest_dir/$(basename "$1")"
mkdir -p "$(dirname "$2")"
binary="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
GO=${GO:-go}

ocb="$here/build/ocb${OCB_VERSION:+-$OCB_VERSION}"
mkdir -p "$here/build"
if [ -z "${OCB_VERSION:-}" ]; then
  "$GO" -C "$here/tools" build -o "$ocb" go.opentelemetry.io/collector/cmd/builder
elif [ ! -x "$ocb" ]; then
  GOBIN="$here/build/ocb-$OCB_VERSION.bin" "$GO" install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
  mv "$here/build/ocb-$OCB_VERSION.bin/builder" "$ocb" && rmdir "$here/build/ocb-$OCB_VERSION.bin"
fi

out=$(sed -nE 's/^[[:space:]]+output_path:[[:space:]]*([^[:space:]#]+).*/\1/p' "$manifest" | head -1)
[ -n "$out" ] || { echo "$manifest: no dist.output_path" >&2; exit 1; }
case "$out" in /*) src="$out" ;; *) src="$manifest_dir/$out" ;; esac
rm -rf "$src"
log="$(dirname "$binary")/ocb.log"
# ocb writes go.mod and the sources, then fails in its tidy step; its log is kept for diagnosis.
(cd "$manifest_dir" && "$ocb" --config "$manifest" --skip-compilation) >"$log" 2>&1 || true
cd "$src" 2>/dev/null && [ -f go.mod ] && [ -f components.go ] \
  || { cat "$log" >&2; echo "ocb did not generate the sources of $manifest" >&2; exit 1; }
cat "$here/llmsliconnector/go.sum" >>go.sum
"$GO" mod tidy -e >/dev/null 2>tidy.log || { cat tidy.log >&2; exit 1; }
"$GO" build -trimpath -ldflags='-s -w' -o "$binary" .
echo "built $binary"
