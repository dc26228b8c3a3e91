#!/usr/bin/env python3
"""Write the small test images of Tests/DataIOTests/Resources/images (deterministic; needs numpy and pillow).

Each covers one decoding case: 8-bit RGB, interlaced, gray and palette PNG, alpha, 4-bit gray, 16-bit colour and
16-bit gray PNG, baseline / progressive / 4:4:4 / grayscale / CMYK JPEG, a truncated JPEG and a file that
is not an image. Usage: tools/make_test_images.py [--out DIR]
"""
import argparse
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image


def photo_like(h, w, seed):
    """Smooth gradients, a disc and noise: edges and texture for the resampling filters to act on."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 255 * (((x - w / 2) ** 2 + (y - h / 2) ** 2) < (min(h, w) / 3) ** 2)
    img = np.stack([r, g, b], -1) + rng.normal(0, 25, (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def png16(arr, color_type):
    """A 16-bit PNG written by hand (PIL cannot write 16-bit colour): arr (h, w, c) uint16."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def png8_interlaced(arr):
    """An 8-bit RGB Adam7-interlaced PNG written by hand (PIL cannot write interlaced PNG): arr (h, w, 3)."""
    h, w = arr.shape[:2]
    raw = b""
    for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
        sub = arr[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "DataIOTests", "Resources", "images"))
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    rgb = photo_like(47, 71, 1)
    Image.fromarray(rgb).save(os.path.join(out, "rgb.png"))
    Image.fromarray(photo_like(64, 48, 2)).save(os.path.join(out, "rgb.jpg"), quality=90)  # 4:2:0
    Image.fromarray(photo_like(33, 50, 3)).save(os.path.join(out, "rgb-444.jpg"), quality=95, subsampling=0)
    Image.fromarray(photo_like(53, 37, 4)).save(os.path.join(out, "progressive.jpg"), quality=85, progressive=True)
    gray = photo_like(29, 41, 5)[..., 0]
    Image.fromarray(gray).save(os.path.join(out, "gray.png"))
    Image.fromarray(gray).save(os.path.join(out, "gray.jpg"), quality=90)
    Image.fromarray(gray >> 4).convert("L").save(os.path.join(out, "gray4.png"), bits=4)
    rgba = np.concatenate([photo_like(21, 30, 6), photo_like(21, 30, 7)[..., :1]], -1)
    Image.fromarray(rgba, "RGBA").save(os.path.join(out, "rgba.png"))
    Image.fromarray(np.stack([gray, gray[::-1]], -1), "LA").save(os.path.join(out, "gray-alpha.png"))
    palette = Image.fromarray(photo_like(25, 31, 8)).quantize(16)
    palette.info["transparency"] = 3
    palette.save(os.path.join(out, "palette.png"), transparency=3)
    cmyk = Image.fromarray(photo_like(27, 35, 9)).convert("CMYK")
    cmyk.save(os.path.join(out, "cmyk.jpg"), quality=90)
    wide = (photo_like(19, 23, 10).astype(np.uint16) * 257 + np.random.default_rng(11).integers(0, 257, (19, 23, 3))).astype(np.uint16)
    with open(os.path.join(out, "rgb16.png"), "wb") as f:
        f.write(png16(wide, 2))
    with open(os.path.join(out, "gray16.png"), "wb") as f:
        f.write(png16(wide[..., :1], 0))
    with open(os.path.join(out, "interlaced.png"), "wb") as f:
        f.write(png8_interlaced(photo_like(29, 37, 13)))
    whole = io.BytesIO()
    Image.fromarray(photo_like(40, 40, 12)).save(whole, "JPEG", quality=90)
    with open(os.path.join(out, "truncated.jpg"), "wb") as f:
        f.write(whole.getvalue()[: len(whole.getvalue()) // 2])
    with open(os.path.join(out, "not-an-image.jpg"), "w") as f:
        f.write("this is a text file with an image's extension\n")
    # The first 20 Fashion-MNIST test images of models/ as 28 x 28 gray PNGs in class folders 0-9, named by
    # their row: (pixel / 255 - 0.2860) / 0.3530 of these files gives models/fmnist-test-1k.npy's rows.
    root = os.path.join(os.path.dirname(__file__), "..")
    x = np.load(os.path.join(root, "models", "fmnist-test-1k.npy"))[:20, 0]
    y = np.load(os.path.join(root, "models", "fmnist-test-1k-labels.npy"))[:20]
    pixels = np.rint((x.astype(np.float64) * 0.3530 + 0.2860) * 255).astype(np.uint8)
    assert np.array_equal(((pixels.astype(np.float32) / 255.0 - 0.2860) / 0.3530).astype(np.float32), x)
    fmnist = os.path.join(out, "..", "fmnist")
    for i, (img, label) in enumerate(zip(pixels, y)):
        os.makedirs(os.path.join(fmnist, str(label)), exist_ok=True)
        Image.fromarray(img, "L").save(os.path.join(fmnist, str(label), f"{i:04d}.png"))
    print("wrote", len(os.listdir(out)), "files to", out, "and 20 Fashion-MNIST images to", os.path.normpath(fmnist))


if __name__ == "__main__":
    main()
