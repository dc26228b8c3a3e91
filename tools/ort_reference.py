#!/usr/bin/env python3
"""Run an ONNX model with onnxruntime (CPU EP, 2 intra-op threads) and save its first output.

Usage: ort_reference.py MODEL.onnx INPUT.npy OUTPUT.npy [--labels LABELS.npy] [--batch 16]
Without --labels, INPUT-labels.npy beside the input is used when it exists (e.g. foolbox20-labels.npy);
with labels, top-1/top-5 counts are printed.
"""
import argparse
import os

import numpy as np
import onnxruntime as ort


def session(model, threads=2):
    """A deterministic CPU session: fixed thread counts, sequential execution."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def run(model, x, batch=16, threads=2):
    sess = session(model, threads)
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(outs)


def topk_counts(logits, labels):
    order = np.argsort(-logits, axis=1)
    top1 = int((order[:, 0] == labels).sum())
    top5 = int((order[:, :5] == labels[:, None]).any(axis=1).sum())
    return top1, top5


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--labels")
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    x = np.load(a.input).astype(np.float32)
    y = run(a.model, x, a.batch)
    np.save(a.output + ".tmp.npy", y)
    os.replace(a.output + ".tmp.npy", a.output)
    print(f"{a.model} on {a.input} {tuple(x.shape)} -> {a.output} {tuple(y.shape)}")
    labels = a.labels or (a.input[:-4] + "-labels.npy")
    if os.path.exists(labels) and y.ndim == 2:
        lab = np.load(labels)
        t1, t5 = topk_counts(y, lab)
        shown = f"  predicted {y.argmax(1).tolist()}" if len(lab) <= 50 else ""
        print(f"top-1 {t1}/{len(lab)} ({t1 / len(lab):.2%})  top-5 {t5}/{len(lab)}{shown}")


if __name__ == "__main__":
    main()
