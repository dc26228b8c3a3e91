#!/usr/bin/env python3
"""Build a 1024-sample Lite0 calibration set from the 200 real photo crops, for memory benchmarks.

Sample i is crop i % 200, mirrored left-right when (i // 200) is odd and rolled right by 7 * (i // 200)
mod 32 columns, so the 1024 samples are distinct. The figures of docs/BENCHMARKS.md "Reconstruction
memory" use it; memory depends on the sample count and shape, not on the pictures.

Usage: make_calibration_1024.py [--crops assets/photo-crops.npy] [--out /tmp/calib-1024.npy]
"""
import argparse

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", default="assets/photo-crops.npy")
    parser.add_argument("--out", default="/tmp/calib-1024.npy")
    args = parser.parse_args()
    crops = np.load(args.crops)
    samples = []
    for i in range(1024):
        k = i // len(crops)
        x = crops[i % len(crops)]
        if k % 2 == 1:
            x = x[:, :, ::-1]
        samples.append(np.roll(x, shift=(7 * k) % 32, axis=2))
    out = np.ascontiguousarray(np.stack(samples).astype(np.float32))
    np.save(args.out, out)
    print(f"wrote {args.out}: {out.shape} {out.dtype}, {out.nbytes / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
