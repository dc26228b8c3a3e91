#!/usr/bin/env python3
"""onnxruntime's own post-training quantizer (quantize_static) as the peer baseline of the accuracy table.

Usage: ort_quantize_static.py MODEL.onnx --calib CALIB.npy --data X.npy [--labels Y.npy]
           --calibrate minmax|entropy --wbits 8|4 --abits 8|4 -o OUT.onnx [--threads 2]

Quantizes MODEL with quantize_static (QDQ format, per-channel weights on axis 0, signed weights, unsigned
activations, the given calibration method) on the CALIB samples, then runs the FP32 and quantized models
with onnxruntime on X and prints one JSON line: top-1/top-5 against the labels, top-1 agreement and mean KL
to the FP32 model, and the quantize wall time.

Bit widths: 8 uses QInt8/QUInt8. 4 uses QInt4/QUInt4 (onnxruntime >= 1.19 QDQ types; every layer,
including the first and last, gets the same width - onnxruntime has no first/last-layer exception).
onnxruntime has no 2- or 3-bit type, so W2/W3 configurations are reported as unsupported (exit code 3).
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
from onnxruntime.quantization.shape_inference import quant_pre_process


class NpyReader(CalibrationDataReader):
    """Feeds the calibration samples in batches of `batch`."""

    def __init__(self, name, x, batch):
        self.name, self.x, self.batch, self.pos = name, x, batch, 0

    def get_next(self):
        if self.pos >= len(self.x):
            return None
        b = self.x[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return {self.name: b}

    def rewind(self):
        self.pos = 0


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run(sess, x, batch=20):
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])


def log_softmax(z):
    z = z.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def metrics(logits, labels, reference):
    out = {"samples": int(len(logits))}
    if labels is not None:
        out["top1_pct"] = round(100 * float((logits.argmax(1) == labels).mean()), 2)
        label_logit = logits[np.arange(len(labels)), labels]
        out["top5_pct"] = round(100 * float(((logits > label_logit[:, None]).sum(1) < 5).mean()), 2)
    out["agreement_pct"] = round(100 * float((logits.argmax(1) == reference.argmax(1)).mean()), 2)
    lp, lq = log_softmax(reference), log_softmax(logits)
    out["mean_kl"] = round(float((np.exp(lp) * (lp - lq)).sum(1).mean()), 5)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--calib", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--labels")
    ap.add_argument("--calibrate", choices=["minmax", "entropy", "percentile"], default="minmax")
    ap.add_argument("--wbits", type=int, default=8)
    ap.add_argument("--abits", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib-batch", type=int, default=20)
    ap.add_argument("--entropy-bins", type=int, default=0,
                    help="Entropy only: histogram bins (0 = quantize_static's defaults, 128 bins and 128 quantized bins, "
                         "with which Entropy returns the MinMax range); with N > 0 the ranges are computed by "
                         "create_calibrator with N bins and 2^(abits-1) quantized bins and handed to quantize_static "
                         "through calibration_cache_path")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()

    record = {"engine": "onnxruntime.quantize_static", "version": ort.__version__, "model": os.path.basename(a.model),
              "calibrate": a.calibrate, "wbits": a.wbits, "abits": a.abits, "per_channel": True, "format": "QDQ"}
    types = {8: (QuantType.QInt8, QuantType.QUInt8), 4: (getattr(QuantType, "QInt4", None), getattr(QuantType, "QUInt4", None))}
    if a.wbits not in types or a.abits not in types or types[a.wbits][0] is None or types[a.abits][1] is None:
        record.update({"status": "unsupported", "reason": f"onnxruntime {ort.__version__} has no {a.wbits}-bit weight / {a.abits}-bit activation QuantType"})
        print(json.dumps(record))
        sys.exit(3)
    weight_type, activation_type = types[a.wbits][0], types[a.abits][1]

    calib = np.load(a.calib).astype(np.float32)
    x = np.load(a.data).astype(np.float32)
    labels = np.load(a.labels).astype(np.int64) if a.labels else None
    input_name = session(a.model, a.threads).get_inputs()[0].name

    t0 = time.perf_counter()
    pre = a.output + ".pre.onnx"
    quant_pre_process(a.model, pre, skip_symbolic_shape=True)
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[a.calibrate]
    cache = a.output + ".ranges.json"
    try:
        reader, cache_path = NpyReader(input_name, calib, a.calib_batch), None
        if a.calibrate == "entropy" and a.entropy_bins > 0:
            with tempfile.TemporaryDirectory(prefix="ort-entropy.") as d:
                ops = list(set(QLinearOpsRegistry.keys()) | set(QDQRegistry.keys()))
                cal = create_calibrator(pre, ops, augmented_model_path=os.path.join(d, "augmented.onnx"),
                                        calibrate_method=method,
                                        extra_options={"num_bins": a.entropy_bins, "num_quantized_bins": 2 ** (a.abits - 1)})
                cal.collect_data(reader)
                save_tensors_data(cal.compute_data(), cache)
                del cal
            reader, cache_path = None, cache
            record.update({"entropy_bins": a.entropy_bins, "entropy_quantized_bins": 2 ** (a.abits - 1)})
        quantize_static(pre, a.output, reader, quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=weight_type, activation_type=activation_type,
                        calibrate_method=method, calibration_cache_path=cache_path)
        quantize_seconds = time.perf_counter() - t0
        fp32 = run(session(a.model, a.threads), x)
        quantized = run(session(a.output, a.threads), x)
    except Exception as e:  # report the failure as a record, not a traceback
        record.update({"status": "failed", "reason": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"})
        print(json.dumps(record))
        sys.exit(4)
    finally:
        for f in (pre, cache):
            if os.path.exists(f):
                os.remove(f)
    record.update({"status": "ok", "calib_samples": int(len(calib)), "quantize_s": round(quantize_seconds, 2)})
    record.update(metrics(quantized, labels, fp32))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
