#!/usr/bin/env python3
"""Preprocess public photos for EfficientNet-Lite0 into .npy arrays (deterministic).

Preprocessing (the Lite0 preset): decode to RGB uint8 0..255 (grayscale replicated to 3 channels,
alpha dropped); resize so the shorter side is 256 with PIL bicubic (longer side = int(256*long/short),
as torchvision does); center crop 224 (offset = round((size-224)/2)); x = (x - 127) / 128; NCHW float32.

Outputs (in --out, default assets/):
  foolbox20.npy [20,3,224,224] + foolbox20-labels.npy int64   foolbox/data/imagenet_NN_LABEL.jpg
  foolbox20-crops.npy [200,3,224,224] + foolbox20-crops-labels.npy   the 10 extra crops (below) of each
                                    labelled photo: held-out evaluation data, never used to calibrate
  photos.npy [P,3,224,224]                                   unlabelled photos, same preprocessing
  photo-crops.npy [10P,3,224,224]   from a resize to shorter side 288: crops at the 4 corners and
                                    the center, each unflipped and horizontally flipped
  photos-manifest.json              which source file (and crop) each index is
"""
import argparse
import glob
import importlib.util
import json
import os
import re

import numpy as np
from PIL import Image

CROP = 224

# Real colour photographs bundled with the packages, then natural grayscale photos (converted to RGB).
COLOUR = [("skimage", "data/astronaut.png"), ("skimage", "data/chelsea.png"),
          ("skimage", "data/coffee.png"), ("skimage", "data/hubble_deep_field.jpg"),
          ("skimage", "data/ihc.png"), ("skimage", "data/motorcycle_left.png"),
          ("skimage", "data/motorcycle_right.png"), ("skimage", "data/retina.jpg"),
          ("skimage", "data/rocket.jpg"), ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
          ("sklearn", "datasets/images/china.jpg"), ("sklearn", "datasets/images/flower.jpg")]
GRAY = [("skimage", f"data/{n}.png") for n in
        ("camera", "coins", "moon", "brick", "grass", "gravel", "clock_motion", "cell")]


def pkg_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise SystemExit(f"package {name} not installed: run tools/setup_venv.sh")
    return os.path.dirname(spec.origin)


def load_rgb(path):
    """RGB uint8 PIL image (grayscale replicated, alpha dropped)."""
    with Image.open(path) as im:
        return im.convert("RGB")


def resize_shorter(im, size):
    w, h = im.size
    nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    return im.resize((nw, nh), Image.BICUBIC)


def crop(im, left, top):
    return im.crop((left, top, left + CROP, top + CROP))


def center(im):
    w, h = im.size
    return crop(im, int(round((w - CROP) / 2.0)), int(round((h - CROP) / 2.0)))


def to_nchw(im):
    x = np.asarray(im, dtype=np.float32)  # HWC 0..255
    return ((x - 127.0) / 128.0).transpose(2, 0, 1).copy()


def preprocess(path):
    return to_nchw(center(resize_shorter(load_rgb(path), 256)))


def extra_crops(path):
    """10 deterministic crops from the shorter-side-288 resize: corners + center, x {no flip, flip}."""
    im = resize_shorter(load_rgb(path), 288)
    w, h = im.size
    spots = {"top-left": (0, 0), "top-right": (w - CROP, 0), "bottom-left": (0, h - CROP),
             "bottom-right": (w - CROP, h - CROP),
             "center": (int(round((w - CROP) / 2.0)), int(round((h - CROP) / 2.0)))}
    out = []
    for name, (l, t) in spots.items():
        c = crop(im, l, t)
        out.append((name, False, to_nchw(c)))
        out.append((name, True, to_nchw(c.transpose(Image.FLIP_LEFT_RIGHT))))
    return out


def save(path, arr):
    np.save(path + ".tmp.npy", arr)
    os.replace(path + ".tmp.npy", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="assets")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    manifest = {"preprocessing": __doc__.split("\n\n")[1].strip()}

    # (a) the 20 labelled ImageNet photos shipped by foolbox
    files = sorted(glob.glob(os.path.join(pkg_dir("foolbox"), "data", "imagenet_*.jpg")))
    assert len(files) == 20, files
    labels = [int(re.match(r"imagenet_(\d+)_(\d+)\.jpg", os.path.basename(f)).group(2)) for f in files]
    save(os.path.join(a.out, "foolbox20.npy"), np.stack([preprocess(f) for f in files]))
    save(os.path.join(a.out, "foolbox20-labels.npy"), np.array(labels, np.int64))
    manifest["foolbox20"] = [{"index": i, "file": "foolbox/data/" + os.path.basename(f), "label": l}
                             for i, (f, l) in enumerate(zip(files, labels))]
    held_out = [(i, name, flip, arr) for i, f in enumerate(files) for name, flip, arr in extra_crops(f)]
    save(os.path.join(a.out, "foolbox20-crops.npy"), np.stack([arr for _, _, _, arr in held_out]))
    save(os.path.join(a.out, "foolbox20-crops-labels.npy"), np.array([labels[i] for i, _, _, _ in held_out], np.int64))
    manifest["foolbox20-crops"] = [{"index": k, "photo": i, "crop": name, "flip": flip}
                                   for k, (i, name, flip, _) in enumerate(held_out)]

    # (b) unlabelled photos and their extra crops
    photos, crops, m_photos, m_crops = [], [], [], []
    for grayscale, (pkg, rel) in [(False, s) for s in COLOUR] + [(True, s) for s in GRAY]:
        path = os.path.join(pkg_dir(pkg), rel)
        m_photos.append({"index": len(photos), "file": f"{pkg}/{rel}", "grayscale": grayscale})
        photos.append(preprocess(path))
        for name, flip, arr in extra_crops(path):
            m_crops.append({"index": len(crops), "photo": len(photos) - 1, "crop": name, "flip": flip})
            crops.append(arr)
    save(os.path.join(a.out, "photos.npy"), np.stack(photos))
    save(os.path.join(a.out, "photo-crops.npy"), np.stack(crops))
    manifest["photos"], manifest["photo-crops"] = m_photos, m_crops
    with open(os.path.join(a.out, "photos-manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote foolbox20 (20), foolbox20-crops ({len(held_out)}), photos ({len(photos)}), photo-crops ({len(crops)}) to {a.out}/")


if __name__ == "__main__":
    main()
