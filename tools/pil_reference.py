#!/usr/bin/env python3
"""PIL + numpy reference outputs for the Swift image tests (Tests/DataIOTests): decoding, resizing and
preprocessing exactly as a torchvision / numpy pipeline does it on PIL images.

Usage: pil_reference.py JOBS.json OUT_DIR. JOBS is a list; job i writes OUT_DIR/i.npy (or OUT_DIR/i.err
with the exception's text when PIL fails):
  {"kind": "decode", "file": F}                                   Image.open(F).convert("RGB"), uint8 HWC
  {"kind": "resize", "file": F, "width": W, "height": H, "filter": "nearest|bilinear|bicubic"}  uint8 HWC
  {"kind": "preset", "file": F, "resize": N|null, "crop": N|null, "filter": ..., "scale": S,
   "mean": [3 or 1], "std": [3 or 1], "channels": "rgb|bgr|gray", "layout": "nchw|nhwc"}       float32
  (gray: Image.open(F).convert("L") first, as a pipeline with torchvision's Grayscale or an "L" image)
"""
import json
import os
import sys

import numpy as np
from PIL import Image

FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def preset(job):
    im = Image.open(job["file"]).convert("L" if job["channels"] == "gray" else "RGB")
    if job["resize"]:
        # torchvision.transforms.Resize(int) on a PIL image: shorter side to N, longer int(N * long / short).
        size, (w, h) = job["resize"], im.size
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(size * long / short)
        im = im.resize((size, new_long) if w <= h else (new_long, size), FILTERS[job["filter"]])
    if job["crop"]:
        # torchvision.transforms.CenterCrop: offsets int(round((size - crop) / 2.0)).
        c, (w, h) = job["crop"], im.size
        left, top = int(round((w - c) / 2.0)), int(round((h - c) / 2.0))
        im = im.crop((left, top, left + c, top + c))
    x = np.asarray(im, dtype=np.float32)
    if x.ndim == 2:
        x = x[..., None]
    if job["channels"] == "bgr":
        x = x[..., ::-1]
    x = x / np.float32(job["scale"])
    x = (x - np.array(job["mean"], np.float32)) / np.array(job["std"], np.float32)
    if job["layout"] == "nchw":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def main():
    jobs = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    for i, job in enumerate(jobs):
        try:
            if job["kind"] == "decode":
                arr = np.asarray(Image.open(job["file"]).convert("RGB"))
            elif job["kind"] == "resize":
                im = Image.open(job["file"]).convert("RGB")
                arr = np.asarray(im.resize((job["width"], job["height"]), FILTERS[job["filter"]]))
            else:
                arr = preset(job)
            np.save(os.path.join(out, f"{i}.npy"), np.ascontiguousarray(arr))
        except Exception as error:  # the test reports PIL's refusal next to ours
            with open(os.path.join(out, f"{i}.err"), "w") as f:
                f.write(f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    main()
