#!/usr/bin/env python3
"""Compare rapq's image preprocessing with the Python pipelines it reproduces (a benchmark, not a test).

  rapq-bench images --data DIR --preset P --output OUT.npy     # writes OUT.npy and OUT.txt (file per row)
  benchmarks/compare_preprocessing.py OUT.npy --preset P       # needs pillow, numpy (torch + torchvision for P=torchvision)

References: efficientnet-lite is tools/prepare_photos.py's preprocess (the project's Lite0 assets);
torchvision is torchvision.transforms Resize(256) + CenterCrop(224) + ToTensor + Normalize on PIL images.
Differences are reported in 0..255 pixel units (value difference x std x scale), so 0.5 means half a grey level.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))


def reference(preset, path):
    if preset == "efficientnet-lite":
        import prepare_photos
        return prepare_photos.preprocess(path), 128.0
    if preset == "torchvision":
        import torchvision.transforms as T
        from PIL import Image
        t = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                       T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
        with Image.open(path) as im:
            x = t(im.convert("RGB")).numpy()
        return x, np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1) * 255.0
    raise SystemExit(f"no reference for preset {preset}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("batch")
    ap.add_argument("--preset", required=True)
    a = ap.parse_args()
    ours = np.load(a.batch)
    files = open(os.path.splitext(a.batch)[0] + ".txt").read().splitlines()
    assert len(files) == len(ours), (len(files), ours.shape)
    per_image, worst, differing, inexact, total = [], 0.0, 0, 0, 0
    for x, f in zip(ours, files):
        ref, unit = reference(a.preset, f)
        d = np.abs(x - ref) * unit  # pixel units
        per_image.append(d.mean())
        worst = max(worst, float(d.max()))
        differing += int((d > 1e-3).sum())
        inexact += int((x != ref).sum())
        total += d.size
    per_image = np.array(per_image)
    print(f"{a.preset}: {len(files)} images, mean |diff| {per_image.mean():.6f} grey levels "
          f"(worst image {per_image.max():.6f}), max {worst:.4f}, samples differing by > 0.001 level: {differing} of {total}, "
          f"float values not bit-identical: {inexact}")


if __name__ == "__main__":
    main()
