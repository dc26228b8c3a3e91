#!/usr/bin/env python3
"""Compare `rapq run` logits with onnxruntime's on the same model and inputs (for benchmarks/zoo.sh).

Usage: zoo_compare.py MODEL.onnx INPUT.npy SWIFT_LOGITS.npy
Prints max |swift - ort| / max |ort| (the relative difference) and the share of samples with the same top-1.
"""
import json
import sys

import numpy as np
import onnxruntime as ort

model, inputs, swift_path = sys.argv[1:4]
x = np.load(inputs)
options = ort.SessionOptions()
options.intra_op_num_threads = 2
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
fixed = session.get_inputs()[0].shape[0]
step = fixed if isinstance(fixed, int) and fixed > 0 else 16
reference = np.concatenate([session.run(None, {name: x[i:i + step]})[0] for i in range(0, len(x), step)])
swift = np.load(swift_path).reshape(reference.shape)
relative = float(np.abs(swift - reference).max() / max(np.abs(reference).max(), 1e-30))
same = float((swift.argmax(1) == reference.argmax(1)).mean() * 100)
print(f"{relative:.1e}, {same:.0f}%")
