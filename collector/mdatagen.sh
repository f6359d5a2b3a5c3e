#!/usr/bin/env bash
# Generate the llm_sli connector's mdatagen files from llmsliconnector/metadata.yaml with the mdatagen pinned in
# tools/go.mod: internal/metadata/generated_status.go, generated_component_test.go, generated_package_test.go.
#   collector/mdatagen.sh           # write them
#   collector/mdatagen.sh --check   # exit 1 if a checked-in one differs from what mdatagen generates now
# mdatagen is v0.150.0, not v0.152.0 like the rest of the collector: the Go module proxy serves no v0.151-v0.154
# of go.opentelemetry.io/collector/cmd/mdatagen (404), and the older generator's output builds against v0.152.0.
set -euo pipefail
cd "$(dirname "$0")"
GO=${GO:-go}
component=llmsliconnector
mdatagen() { (cd tools && "$GO" tool mdatagen "$1"); }

if [ "${1:-}" != "--check" ]; then
  mdatagen "../$component/metadata.yaml"
  exit 0
fi

# Generate into a copy holding only what mdatagen reads (metadata.yaml, the module files, a package clause for
# `go list`), then compare every file it wrote with the checked-in one.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/$component"
cp "$component/metadata.yaml" "$component/go.mod" "$component/go.sum" "$tmp/$component/"
echo "package $component" >"$tmp/$component/doc.go"
(cd "$tmp/$component" && find . -type f | sort) >"$tmp/inputs"
mdatagen "$tmp/$component/metadata.yaml"
stale=0
while read -r f; do
  if ! cmp -s "$tmp/$component/$f" "$component/$f"; then
    echo "stale generated file: collector/$component/${f#./} (run: collector/mdatagen.sh)" >&2
    stale=1
  fi
done < <(cd "$tmp/$component" && find . -type f | sort | comm -23 - "$tmp/inputs")
exit $stale
