#!/usr/bin/env python3
"""onnxruntime CPU inference throughput, printed as one JSON line.

Usage: ort_throughput.py MODEL.onnx [--batch 32] [--threads 2] [--runs 7] [--warmup 2] [--input X.npy]
Input: X.npy (first --batch rows, tiled if shorter) or, without it, seeded N(0,1) data shaped like the
model input (symbolic dims set to --batch). Reports the median images/s over --runs timed runs and the
process's peak RSS (ru_maxrss, which includes the Python interpreter and numpy).
"""
import argparse
import json
import os
import platform
import resource
import statistics
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--input")
    a = ap.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if a.input:
        x = np.load(a.input).astype(np.float32)
        x = np.concatenate([x] * (-(-a.batch // len(x))))[:a.batch]
    else:
        shape = [d if isinstance(d, int) else a.batch for d in inp.shape]
        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)

    for _ in range(a.warmup):
        sess.run(None, {inp.name: x})
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        sess.run(None, {inp.name: x})
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({
        "engine": "onnxruntime", "version": ort.__version__, "model": os.path.basename(a.model),
        "batch": len(x), "threads": a.threads, "runs": a.runs, "median_s": round(med, 6),
        "min_s": round(min(times), 6), "images_per_s": round(len(x) / med, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "unset"),
        "machine": platform.machine(), "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
