#!/usr/bin/env python3
"""Check that onnxruntime runs a RAPQ QDQ model with integer kernels, and run it.

Usage: check_qdq_onnxruntime.py MODEL.qdq.onnx INPUT.npy [--labels Y.npy] [--compare LOGITS.npy]
                                [--save-logits OUT.npy] [--strict] [--batch 32]

1. Finds the model's quantized convolutions (Conv whose weight comes from a DequantizeLinear) and which
   of them onnxruntime can fuse: input from a DequantizeLinear and output into a QuantizeLinear (possibly
   through Relu/Clip). A conv whose output the network keeps in float (e.g. the conv feeding a residual
   Add, whose output is not quantized on its own) cannot become QLinearConv by design; it is listed apart.
2. Builds a CPU session (2 intra-op threads) with SessionOptions.optimized_model_filepath set to a
   temporary file, and counts the optimized graph's QLinearConv / ConvInteger / float Conv nodes
   (Conv, FusedConv, NchwcConv), naming every quantized conv that stayed float.
3. Runs INPUT.npy, prints top-1 (accuracy with --labels, agreement and logit differences with --compare).
4. Prints one JSON summary line last. Exit code 1 if a fusable quantized conv was not fused into an
   integer op (with --strict: if any quantized conv was not), 2 on usage errors.
"""
import argparse
import json
import os
import sys
import tempfile
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort

FLOAT_CONVS = {"Conv", "FusedConv", "NchwcConv"}
INTEGER_CONVS = {"QLinearConv", "ConvInteger"}
PASS_THROUGH = {"Relu", "Clip"}


def graph_maps(graph):
    producer = {o: n for n in graph.node for o in n.output}
    consumers = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return producer, consumers


def quantized_layers(model):
    """(convs, gemms): names of Conv/Gemm nodes whose weights come from a DequantizeLinear, and for convs
    whether onnxruntime's QDQ selector can fuse them (DQ input, Q output)."""
    producer, consumers = graph_maps(model.graph)
    outputs = {o.name for o in model.graph.output}

    def from_dq(name):
        p = producer.get(name)
        return p is not None and p.op_type == "DequantizeLinear"

    def into_q(name):
        while name not in outputs:
            readers = consumers.get(name, [])
            if len(readers) != 1:
                return False
            r = readers[0]
            if r.op_type == "QuantizeLinear":
                return True
            if r.op_type not in PASS_THROUGH:
                return False
            name = r.output[0]
        return False

    convs, gemms = {}, []
    for n in model.graph.node:
        if len(n.input) < 2 or not from_dq(n.input[1]):
            continue
        if n.op_type == "Conv":
            convs[n.name] = from_dq(n.input[0]) and into_q(n.output[0])
        elif n.op_type in ("Gemm", "MatMul"):
            gemms.append(n.name)
    return convs, gemms


def matches(optimized_name, original):
    return optimized_name == original or optimized_name.startswith(original + "_")


def session(model_path, optimized_path, threads=2):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    so.optimized_model_filepath = optimized_path
    return ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("--labels", help="integer class labels (.npy), one per sample")
    ap.add_argument("--compare", help="reference logits (.npy), e.g. rapq's simulation, same sample order")
    ap.add_argument("--save-logits", help="write onnxruntime's logits to this .npy file")
    ap.add_argument("--strict", action="store_true", help="fail also on quantized convs that cannot be fused by design")
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()

    model = onnx.load(args.model)
    convs, gemms = quantized_layers(model)
    with tempfile.TemporaryDirectory() as tmp:
        optimized_path = os.path.join(tmp, "optimized.onnx")
        sess = session(args.model, optimized_path)
        optimized = onnx.load(optimized_path)
    ops = Counter(n.op_type for n in optimized.graph.node)
    float_conv_names = [n.name for n in optimized.graph.node if n.op_type in FLOAT_CONVS]
    float_gemm_names = [n.name for n in optimized.graph.node if n.op_type in ("Gemm", "MatMul", "FusedGemm")]
    integer_convs = sum(ops[o] for o in INTEGER_CONVS)

    unfused = [c for c in convs if any(matches(f, c) for f in float_conv_names)]
    # Names may be lost by a rewrite: whatever the names say, a count of integer convs below the number
    # of quantized convs means some stayed float.
    missing = len(convs) - integer_convs - len(unfused)
    unmatched = [f for f in float_conv_names if not any(matches(f, c) for c in convs)]
    if missing > 0:
        unfused += unmatched[:missing] or ["<unnamed>"] * missing
    unfused_fusable = [c for c in unfused if convs.get(c, True)]
    unfused_by_design = [c for c in unfused if c in convs and not convs[c]]
    unfused_gemms = [g for g in gemms if any(matches(f, g) for f in float_gemm_names)]

    print(f"model: {args.model}")
    print(f"quantized convs: {len(convs)} ({sum(convs.values())} fusable: DQ input and Q output)")
    print(f"optimized graph: QLinearConv {ops['QLinearConv']}, ConvInteger {ops['ConvInteger']}, float conv "
          f"{len(float_conv_names)}, QGemm {ops['QGemm']}, float Gemm/MatMul {len(float_gemm_names)}")
    for c in unfused_fusable:
        print(f"  NOT FUSED (fusable): {c}")
    for c in unfused_by_design:
        print(f"  float by design (output not quantized): {c}")
    for g in unfused_gemms:
        print(f"  quantized Gemm left in float: {g}")

    x = np.load(args.input).astype(np.float32)
    name = sess.get_inputs()[0].name
    logits = np.concatenate([sess.run(None, {name: x[i:i + args.batch]})[0] for i in range(0, len(x), args.batch)])
    logits = logits.reshape(len(x), -1)
    if args.save_logits:
        np.save(args.save_logits, logits)
    top1 = logits.argmax(axis=1)
    summary = {
        "model": args.model, "samples": int(len(x)), "ops": dict(sorted(ops.items())),
        "quantized_convs": len(convs), "fusable_convs": int(sum(convs.values())),
        "qlinearconv": ops["QLinearConv"], "convinteger": ops["ConvInteger"], "float_convs": len(float_conv_names),
        "unfused": unfused_fusable, "unfused_by_design": unfused_by_design,
        "quantized_gemms": len(gemms), "qgemm": ops["QGemm"], "unfused_gemms": unfused_gemms,
        "top1": top1[:20].tolist(),
    }
    print(f"top-1 of the first {min(20, len(x))} samples: {top1[:20].tolist()}")
    if args.labels:
        y = np.load(args.labels).reshape(-1).astype(np.int64)
        correct = int((top1 == y[:len(top1)]).sum())
        print(f"top-1 accuracy: {correct}/{len(x)} = {correct / len(x):.4f}")
        summary["correct"] = correct
        summary["accuracy"] = correct / len(x)
    if args.compare:
        ref = np.load(args.compare).astype(np.float32).reshape(len(x), -1)
        agree = int((ref.argmax(axis=1) == top1).sum())
        diff = float(np.abs(ref - logits).max())
        rel = diff / max(float(np.abs(ref).max()), 1e-12)
        print(f"top-1 agreement with {args.compare}: {agree}/{len(x)}; max |diff| {diff:.3g} ({rel:.3g} of max |logit|)")
        summary.update(agreement=agree, max_abs_diff=diff, max_rel_diff=rel)
    failed = bool(unfused_fusable or unfused_gemms or (args.strict and unfused_by_design))
    summary["ok"] = not failed
    print(json.dumps(summary, sort_keys=True))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
