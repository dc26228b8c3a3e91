#!/usr/bin/env python3
"""Fashion-MNIST arrays for the benchmarks and tests (numpy only; Debian `dataset-fashion-mnist`).

Normalisation: x = (pixel / 255 - 0.2860) / 0.3530, float32, NCHW [N,1,28,28]; labels int64.
Writes
  assets/fmnist-test-10k.npy + assets/fmnist-test-10k-labels.npy   the full 10k test set
  models/fmnist-test-1k.npy  + models/fmnist-test-1k-labels.npy     test images 0..999 (committed)
  models/fmnist-calib-256.npy + models/fmnist-calib-256-labels.npy  256 training images (committed):
      the first 256 of np.random.default_rng(0).permutation(60000)
"""
import argparse
import gzip
import os

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    """Read a gzipped IDX file (ubyte) into a uint8 array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    assert raw[:3] == b"\x00\x00\x08", f"{path}: not a ubyte IDX file"
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(split, data=DATA):
    """(uint8 images [N,28,28], int64 labels [N]) for split 'train' or 't10k'."""
    if not os.path.isdir(data):
        raise SystemExit(f"{data} missing: apt-get update && apt-get install -y dataset-fashion-mnist")
    x = read_idx(os.path.join(data, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data, f"{split}-labels-idx1-ubyte.gz")).astype(np.int64)
    return x, y


def normalise(x_uint8):
    """uint8 [N,28,28] -> float32 [N,1,28,28] normalised."""
    return ((x_uint8.astype(np.float32) / 255.0 - MEAN) / STD)[:, None].astype(np.float32)


def save(path, arr):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    np.save(path + ".tmp.npy", arr)
    os.replace(path + ".tmp.npy", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--models-only", action="store_true", help="skip the 10k set in assets/")
    a = ap.parse_args()
    xt, yt = load("t10k", a.data)
    xtr, ytr = load("train", a.data)
    if not a.models_only:
        save("assets/fmnist-test-10k.npy", normalise(xt))
        save("assets/fmnist-test-10k-labels.npy", yt)
    save("models/fmnist-test-1k.npy", normalise(xt[:1000]))
    save("models/fmnist-test-1k-labels.npy", yt[:1000])
    idx = np.random.default_rng(0).permutation(len(xtr))[:256]
    save("models/fmnist-calib-256.npy", normalise(xtr[idx]))
    save("models/fmnist-calib-256-labels.npy", ytr[idx])
    print("wrote Fashion-MNIST arrays" + ("" if a.models_only else " (incl. assets/fmnist-test-10k.npy)"))


if __name__ == "__main__":
    main()
