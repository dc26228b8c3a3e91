#!/usr/bin/env python3
"""Compare onnxruntime's integer codes with the rapq integer engine's, activation site by activation site.

Usage: compare_qdq_codes.py MODEL.qdq.onnx INPUT.npy CODES_DIR [--batch 50]

CODES_DIR is what `rapq eval MODEL.rapq --data INPUT.npy --integer --save-codes CODES_DIR` writes (one .npy per
site, '/' in a name replaced by '_'), for the .rapq model the QDQ file was exported from.

Every code tensor of the QDQ model (the input of each activation DequantizeLinear: a QuantizeLinear output, or the
integer Clip on it) is added as an extra graph output, so onnxruntime returns the codes its fused kernels
(QLinearConv, QLinearAdd, QLinearGlobalAveragePool...) produced. Extra outputs can change what onnxruntime fuses;
run tools/check_qdq_onnxruntime.py on the unmodified model for the optimized graph and the logits.

Prints one line per site in graph order (differing codes, largest difference, first differing samples) and a
JSON summary last. Exit code 1 if any code differs.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort


def code_tensors(model):
    """(site, code tensor) for every activation DequantizeLinear, in graph order; weights and biases excluded."""
    initializers = {t.name for t in model.graph.initializer}
    pairs = []
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] not in initializers:
            pairs.append((n.output[0], n.input[0]))
    return pairs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("codes", help="folder written by rapq eval --integer --save-codes")
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args()

    model = onnx.load(args.model)
    pairs = code_tensors(model)
    existing = {o.name for o in model.graph.output}
    for _, codes in pairs:
        if codes not in existing:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(codes))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    x = np.load(args.input).astype(np.float32)
    collected = {n: [] for n in names}
    for i in range(0, len(x), args.batch):
        for n, v in zip(names, sess.run(None, {sess.get_inputs()[0].name: x[i:i + args.batch]})):
            collected[n].append(v)

    total = differing = 0
    sites = []
    for site, codes in pairs:
        path = os.path.join(args.codes, site.replace("/", "_") + ".npy")
        if not os.path.exists(path):
            # The graph input's DequantizeLinear is renamed ("input/dequantized"); its codes are stored under the input's name.
            path = os.path.join(args.codes, site.split("/")[0].replace("/", "_") + ".npy")
        if not os.path.exists(path):
            print(f"{site}: no codes from the integer engine, skipped")
            continue
        a = np.concatenate(collected[codes]).astype(np.int64)
        b = np.load(path).astype(np.int64)
        if a.shape != b.shape:
            print(f"{site}: shapes differ, onnxruntime {a.shape}, integer engine {b.shape}")
            differing += max(a.size, b.size)
            total += max(a.size, b.size)
            continue
        d = a - b
        bad = int((d != 0).sum())
        samples = np.unique(np.nonzero(d.reshape(len(d), -1))[0]).tolist()
        total += d.size
        differing += bad
        sites.append(site)
        print(f"{site:40s} {bad:>10d} of {d.size:>11d} differ, largest {int(np.abs(d).max()) if d.size else 0} LSB, "
              f"samples {samples[:5]}{'...' if len(samples) > 5 else ''}")
    summary = {"model": args.model, "samples": int(len(x)), "sites": len(sites), "codes": int(total),
               "differing": int(differing), "identical": (total - differing) / total if total else 1.0}
    print(json.dumps(summary, sort_keys=True))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
