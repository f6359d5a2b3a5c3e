#!/usr/bin/env bash
# Create one venv per peer instrumentation under bench/.venvs/ (gitignored), from the pinned requirements beside this
# script. Idempotent: a venv whose requirements did not change since its last install is left alone.
# Usage: bash bench/peers/setup.sh [traceloop genai openai-v2]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venvs="$here/../.venvs"
# Same interpreter as the project venv when there is one, so bytecode and C extensions match.
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$here/../../.venv/bin/python" ]]; then
        python="$("$here/../../.venv/bin/python" -c 'import sys; print(sys._base_executable)')"
    else
        python="python3"
    fi
fi
peers=("$@")
[[ ${#peers[@]} -gt 0 ]] || peers=(traceloop genai openai-v2)
mkdir -p "$venvs"
for peer in "${peers[@]}"; do
    req="$here/$peer.txt"
    [[ -f "$req" ]] || { echo "no requirements file $req" >&2; exit 2; }
    venv="$venvs/$peer"
    stamp="$venv/.installed"
    digest="$(cat "$here/common.txt" "$req" | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$digest" ]]; then
        echo "$peer: up to date"
        continue
    fi
    echo "$peer: installing into $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    (cd "$here" && "$venv/bin/python" -m pip install --quiet -r "$req")
    echo "$digest" > "$stamp"
done
