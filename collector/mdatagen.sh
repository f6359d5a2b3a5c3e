#!/usr/bin/env bash
# Generate the llm_sli connector's mdatagen files from llmsliconnector/metadata.yaml with the mdatagen pinned in
# tools/go.mod (the same release as the rest of the collector): internal/metadata/generated_status.go,
# generated_component_test.go, generated_package_test.go, and the status table of README.md.
#   collector/mdatagen.sh           # write them
#   collector/mdatagen.sh --check   # exit 1 if a checked-in one differs from what mdatagen generates now
set -euo pipefail
cd "$(dirname "$0")"
GO=${GO:-go}
component=llmsliconnector
mdatagen() { (cd tools && "$GO" tool mdatagen "$1"); }

if [ "${1:-}" != "--check" ]; then
  # mdatagen deletes documentation.md when metadata.yaml declares no metrics; ours is generated from
  # semconv/registry (semconv/generate.py), so it is put back.
  doc=$(mktemp)
  cp "$component/documentation.md" "$doc"
  mdatagen "../$component/metadata.yaml"
  mv "$doc" "$component/documentation.md"
  exit 0
fi

# Generate into a copy holding only what mdatagen reads (metadata.yaml, the module files, a package clause for
# `go list`), then compare every file it wrote with the checked-in one.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/$component"
cp "$component/metadata.yaml" "$component/go.mod" "$component/go.sum" "$tmp/$component/"
[ ! -f "$component/README.md" ] || cp "$component/README.md" "$tmp/$component/"
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
# README.md is an input whose status section mdatagen rewrites in place.
if [ -f "$component/README.md" ] && ! cmp -s "$tmp/$component/README.md" "$component/README.md"; then
  echo "stale status section: collector/$component/README.md (run: collector/mdatagen.sh)" >&2
  stale=1
fi
exit $stale
