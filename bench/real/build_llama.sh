#!/usr/bin/env bash
# Build llama.cpp's llama-server for the real-server benchmark (bench/real/README.md), from PyPI only:
# the llama-cpp-python sdist vendors a pinned llama.cpp source tree (and its gguf-py package, which
# bench/real/model.py uses to write the random-weight model). No git clone, no network but the registry.
#
#   bench/real/build_llama.sh            # prints the path of llama-server on its last line
#   LLAMA_SERVER=/path/llama-server bench/real/build_llama.sh   # use an existing binary, build nothing
#
# Idempotent: does nothing when the binary already exists. Needs cmake, a C++17 compiler and python3
# with pip. Takes ~12-15 minutes on 2 cores (only the llama-server target and what it links).
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${LLAMA_CACHE_DIR:-$HERE/../.cache/llama}"
PYTHON="${PYTHON:-python3}"

if [[ -n "${LLAMA_SERVER:-}" ]]; then
  if [[ ! -x "$LLAMA_SERVER" ]]; then
    echo "LLAMA_SERVER=$LLAMA_SERVER is not an executable file" >&2
    exit 1
  fi
  echo "$LLAMA_SERVER"
  exit 0
fi

SRC="$CACHE/llama_cpp_python-$VERSION/vendor/llama.cpp"
BIN="$SRC/build/bin/llama-server"
if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE"
if [[ ! -d "$SRC" ]]; then
  # --no-binary: the sdist (the source), never a prebuilt wheel of the Python bindings.
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: --dest "$CACHE" "llama-cpp-python==$VERSION"
  tar -xzf "$CACHE/llama_cpp_python-$VERSION.tar.gz" -C "$CACHE"
fi

JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
# LLAMA_CURL=OFF: the server never downloads models here, and libcurl headers may be missing.
# Shared libs, native CPU flags: the build is for this machine only (the cache is not shipped).
cmake -S "$SRC" -B "$SRC/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=ON >"$CACHE/cmake.log" 2>&1 \
  || { tail -30 "$CACHE/cmake.log" >&2; exit 1; }
cmake --build "$SRC/build" --config Release -j "$JOBS" --target llama-server >"$CACHE/build.log" 2>&1 \
  || { tail -30 "$CACHE/build.log" >&2; exit 1; }
echo "$BIN"
