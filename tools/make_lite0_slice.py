#!/usr/bin/env python3
"""Offline test fixture: EfficientNet-Lite0 truncated after its first 3 MBConv blocks.

Reads assets/efficientnet-lite0.onnx and assets/foolbox20.npy (tools/fetch_assets.sh makes them) and writes
  Tests/GraphTests/Resources/lite0-slice.onnx           stem + blocks 0..2 (input [N,3,224,224] ->
                                                        output "block2.add" [N,24,56,56]); SAME_UPPER
                                                        convs (stride 1 and 2), depthwise, BN, Clip, Add
  Tests/GraphTests/Resources/lite0-slice-input.npy      foolbox photos 0 and 1, preprocessed [2,3,224,224]
  Tests/GraphTests/Resources/lite0-slice-expected.npy   onnxruntime output of the slice [2,24,56,56]
  assets/lite0-slice-full-logits.npy                    full-model onnxruntime logits for the same 2 photos
"""
import argparse
import os
import sys

import numpy as np
import onnx
import onnx.utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ort_reference import run  # noqa: E402

RES = "Tests/GraphTests/Resources"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="assets/efficientnet-lite0.onnx")
    ap.add_argument("--images", default="assets/foolbox20.npy")
    ap.add_argument("--output-tensor", default="block2.add")
    a = ap.parse_args()
    os.makedirs(RES, exist_ok=True)
    out = os.path.join(RES, "lite0-slice.onnx")

    onnx.utils.extract_model(a.model, out + ".tmp", ["input"], [a.output_tensor])
    m = onnx.load(out + ".tmp")
    m.graph.name = "efficientnet-lite0-slice"
    m.doc_string = ("EfficientNet-Lite0 stem + first 3 MBConv blocks (test fixture made by "
                    "tools/make_lite0_slice.py). Input: (RGB 0..255 - 127)/128, NCHW.")
    del m.graph.value_info[:]  # keep the fixture minimal; shapes are re-inferred by readers
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, out + ".tmp")
    os.replace(out + ".tmp", out)

    x = np.load(a.images)[:2].astype(np.float32)
    y = run(out, x)
    np.save(os.path.join(RES, "lite0-slice-input.npy"), x)
    np.save(os.path.join(RES, "lite0-slice-expected.npy"), y)
    np.save("assets/lite0-slice-full-logits.npy", run(a.model, x))
    print(f"wrote {out} ({os.path.getsize(out)} bytes, {len(m.graph.node)} nodes), "
          f"input {x.shape}, expected {y.shape}")


if __name__ == "__main__":
    main()
