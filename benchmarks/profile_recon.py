#!/usr/bin/env python3
"""Where the time of a reconstruction iteration goes, from a `perf record -g` profile of `rapq-bench recon --profile`.

    perf record -g -o perf.data rapq-bench recon --block resnet --iters 10 --reps 4 --profile
    perf script -i perf.data | benchmarks/profile_recon.py [--label NAME]

Each sample is attributed to the first frame of its call chain, leaf first, that falls in a category:
kernel-mode frames first (page faults when fresh arrays are first touched, scheduling), then BLAS (sgemm*
and OpenBLAS's per-CPU kernels and packing routines), conv kernels (Im2Col, Conv2D, depthwise: the
non-BLAS parts of convolution: patch gather/scatter, bias, output copies), element-wise activation kernels,
the loss, the AdaRound/exponent/regulariser/Adam code, mini-batch gathering, and "other" (thread pool,
allocator, runtime). The samples of the setup (random inputs, FP32 targets) are included; keep it small
against the iterations (the default sizes make it ~3-5%).

Prints one JSON line (shares in percent) and a "# " summary line.
"""
import collections
import json
import re
import sys

CATEGORIES = [
    ("blas", re.compile(r"sgemm|_(COOPERLAKE|SKYLAKEX|HASWELL|ZEN|SANDYBRIDGE)\b|openblas|blas_thread|cblas_")),
    ("conv kernels", re.compile(r"Im2Col|Conv2D|epthwise")),
    ("activation kernels", re.compile(r"Activation|Elementwise|ElementMap")),
    # powf/expf are attributed to their caller (the L_p loss's |d|^p for p != 2, the rectified sigmoid).
    ("loss", re.compile(r"ReconstructionLoss|A4LossO2lp")),
    ("rounding+regulariser+adam", re.compile(
        r"LayerRounding|RectifiedSigmoid|RoundingRegularizer|Adam|UnitWeightReconstruction|UnitWeightA0")),
    ("batch gather", re.compile(r"4rows|rows_")),
    ("subgraph bookkeeping", re.compile(r"SubgraphProgram|NodeEvaluator")),
    # Tensor.rows is inlined into the benchmark's loop: copies left over below it are the mini-batch gather.
    ("batch gather", re.compile(r"rapq_bench0B5Recon")),
]


def categorise(stack):
    """stack: list of (symbol, is_kernel), leaf first."""
    if stack and stack[0][1]:
        leaf = stack[0][0]
        return "kernel: page faults (first touch of new arrays)" if re.search(
            r"page|clear_|fault|memcg|lru|alloc_pages|rmqueue|zap_|free_|unmap", leaf) else "kernel: other"
    for symbol, _ in stack:
        for name, pattern in CATEGORIES:
            if pattern.search(symbol):
                return name
    return "other (runtime, allocator, thread pool)"


def main():
    label = sys.argv[sys.argv.index("--label") + 1] if "--label" in sys.argv else ""
    counts = collections.Counter()
    stack = []
    header = re.compile(r"^\S.*\d+\.\d+:\s")
    frame = re.compile(r"^\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$")

    def flush():
        if stack:
            counts[categorise(stack)] += 1

    for line in sys.stdin:
        if header.match(line):
            flush()
            stack = []
        elif m := frame.match(line):
            symbol, dso = m.group(1), m.group(2)
            stack.append((symbol, "kernel.kallsyms" in dso or dso.startswith("[kernel")))
        elif not line.strip():
            flush()
            stack = []
    flush()
    total = sum(counts.values())
    shares = {k: round(100 * v / total, 1) for k, v in counts.most_common()}
    kernels = shares.get("blas", 0) + shares.get("conv kernels", 0)
    print(json.dumps({"bench": "recon-profile", "label": label, "samples": total, "shares_pct": shares,
                      "blas_plus_conv_pct": round(kernels, 1)}))
    print(f"# {label}: {total} samples; BLAS + conv kernels {kernels:.1f}%; " +
          ", ".join(f"{k} {v}%" for k, v in shares.items()))


if __name__ == "__main__":
    main()
