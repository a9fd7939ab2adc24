#!/usr/bin/env bash
# Run scripts/peer_ort.py (the onnxruntime peer of Ember's benchmarks) inside a
# pinned virtual environment, created on first use under
#   "${EMBER_CACHE:-$HOME/.cache/ember}/peer-ort-venv".
# No torch is installed. Usage: scripts/peer_ort.sh prepare | embed | bench | ids | fidelity ...
# (see the docstring of peer_ort.py). Set PYTHON to choose the interpreter (3.11 tested).
set -euo pipefail

CACHE="${EMBER_CACHE:-$HOME/.cache/ember}"
VENV="$CACHE/peer-ort-venv"
PINS="onnxruntime==1.32.0 onnx==1.23.2 numpy==2.4.6 tokenizers==0.23.3"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

mkdir -p "$CACHE"
if [ "$(cat "$VENV/.pins" 2>/dev/null)" != "$PINS" ]; then
    # Serialize concurrent first runs; the second one finds the venv ready.
    exec 9>"$CACHE/peer-ort-venv.lock"
    flock 9
    if [ "$(cat "$VENV/.pins" 2>/dev/null)" != "$PINS" ]; then
        PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
        echo "peer_ort.sh: creating $VENV with $PY ($PINS)" >&2
        rm -rf "$VENV"
        "$PY" -m venv "$VENV"
        # shellcheck disable=SC2086
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $PINS >&2
        echo "$PINS" > "$VENV/.pins"
    fi
    exec 9>&-
fi

exec "$VENV/bin/python" "$HERE/peer_ort.py" "$@"
