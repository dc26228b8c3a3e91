#!/usr/bin/env python3
"""Markdown tables from the benchmark result files (for docs/BENCHMARKS.md).

Usage: report.py [RESULTS_DIR]   (default benchmarks/results; reads speed.jsonl, lite0-accuracy.jsonl,
fmnist-accuracy.jsonl where present and prints markdown to stdout)
"""
import json
import os
import statistics
import sys


def rows(path):
    if not os.path.exists(path):
        return []
    return [json.loads(l) for l in open(path) if l.startswith("{")]


def fmt(v, spec="{:.1f}"):
    return "-" if v is None else spec.format(v)


def speed(rs):
    out = []
    settings = []
    for r in rs:
        s = r.get("openblas_coretype")
        if s and s not in settings:
            settings.append(s)
    out.append("### Kernels (GFLOP/s, median of 7 after warm-up; conv fractions are medians of per-repetition ratios to the sgemm rate (both cores, 2 concurrent 1-thread products) measured right before each conv repetition; sgemm rate in parentheses)\n")
    out.append("| measurement | " + " | ".join(f"OPENBLAS_CORETYPE={s}" for s in settings) + " |")
    out.append("|---|" + "---|" * len(settings))
    keys = []
    for r in rs:
        if r.get("bench") == "sgemm":
            k = ("sgemm", f"sgemm {r['m']}x{r['n']}x{r['k']} ({r['mode']})")
        elif r.get("bench") == "conv2d":
            k = ("conv2d", f"conv {r['layer']} {r['pass']}")
        else:
            continue
        if k not in keys:
            keys.append(k)
    for kind, label in keys:
        cells = []
        for s in settings:
            match = [r for r in rs if r.get("openblas_coretype") == s and r.get("bench") == kind and
                     (f"sgemm {r.get('m')}x{r.get('n')}x{r.get('k')} ({r.get('mode')})" == label or
                      f"conv {r.get('layer')} {r.get('pass')}" == label)]
            if not match:
                cells.append("-")
                continue
            r = match[-1]
            if kind == "sgemm":
                cells.append(f"{r['gflops']:.1f}")
            else:
                cells.append(f"{r['gflops']:.1f} = {100 * r['fraction_of_sgemm_512']:.0f}% of 512^3 "
                             f"({r.get('interleaved_sgemm_512_gflops', float('nan')):.1f}), "
                             f"{100 * r['fraction_of_sgemm_64x3136x576']:.0f}% of 64x3136x576 "
                             f"({r.get('interleaved_sgemm_64x3136x576_gflops', float('nan')):.1f})")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("### EfficientNet-Lite0 FP32, batch 32 (images/s; median over rounds, each a median of runs)\n")
    out.append("| OPENBLAS_CORETYPE | Swift (rounds) | onnxruntime 2 threads (rounds) | Swift / onnxruntime | Swift peak RSS (MB) | onnxruntime process peak RSS (MB) | Swift with RAPQ_SIMD=baseline (rounds) |")
    out.append("|---|---|---|---|---|---|---|")
    for s in settings:
        fp32 = [r for r in rs if r.get("bench") == "fp32-inference" and r.get("openblas_coretype") == s]
        sw = [r["images_per_s"] for r in fp32 if r.get("depthwise_vector_unit") != "baseline"]
        base = [r["images_per_s"] for r in fp32 if r.get("depthwise_vector_unit") == "baseline"]
        base_cell = f"{statistics.median(base):.2f} ({', '.join(f'{v:.1f}' for v in base)})" if base else "-"
        ort = [r["images_per_s"] for r in rs if r.get("engine") == "onnxruntime" and r.get("openblas_coretype") == s]
        peak = [r["peak_rss_mb"] for r in rs if r.get("bench") in ("fp32-inference", "memory") and r.get("openblas_coretype") == s]
        opeak = [r.get("peak_rss_mb") for r in rs if r.get("engine") == "onnxruntime" and r.get("openblas_coretype") == s and r.get("peak_rss_mb")]
        if not sw or not ort:
            continue
        a, b = statistics.median(sw), statistics.median(ort)
        out.append(f"| {s} | {a:.2f} ({', '.join(f'{v:.1f}' for v in sw)}) | {b:.2f} ({', '.join(f'{v:.1f}' for v in ort)}) | "
                   f"{a / b:.2f} | {max(peak):.0f} | {fmt(max(opeak) if opeak else None, '{:.0f}')} | {base_cell} |")
    out.append("")
    out.append("### Integer engine vs FP32 simulation vs FP32 engine (Lite0, batch 32, images/s, interleaved runs)\n")
    out.append("| OPENBLAS_CORETYPE | model | integer engine | FP32 simulation | FP32 engine | integer / FP32 engine |")
    out.append("|---|---|---|---|---|---|")
    for s in settings:
        ints = [r for r in rs if r.get("bench") == "integer-vs-float" and r.get("openblas_coretype") == s]
        for model in dict.fromkeys(r["model"] for r in ints):
            e = {r["engine"]: r for r in ints if r["model"] == model}
            if len(e) < 3:
                continue
            out.append(f"| {s} | {model} | {e['integer-engine']['images_per_s']:.2f} | {e['fp32-simulation']['images_per_s']:.2f} | "
                       f"{e['fp32-engine']['images_per_s']:.2f} | {e['integer-engine']['ratio_to_fp32_engine']:.2f} |")
    return "\n".join(out)


def lite0(rs):
    out = ["| method | W/A | top-1 | top-5 | agreement with FP32 | mean KL | quantize wall (s) | peak RSS (MB) |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rs:
        if r.get("engine") == "rapq":
            name = r["method"] if r["method"] != "fp32" else "FP32"
            wa = "32/32" if r["method"] == "fp32" else f"W{r['wbits']}A{r['abits']}"
        else:
            name = f"onnxruntime quantize_static {r.get('calibrate')}"
            if r.get("calibrate") == "entropy":
                name += f" ({r['entropy_bins']} bins)" if r.get("entropy_bins") else " (default 128 bins)"
            wa = f"W{r.get('wbits')}A{r.get('abits')}"
            if r.get("status") != "ok":
                out.append(f"| {name} | {wa} | {r.get('status')}: {r.get('reason', '')} | | | | | |")
                continue
        if r.get("status") == "failed":
            out.append(f"| {name} | {wa} | failed (see log) | | | | | |")
            continue
        out.append(f"| {name} | {wa} | {fmt(r.get('top1_pct'), '{:.0f}%')} | {fmt(r.get('top5_pct'), '{:.0f}%')} | "
                   f"{fmt(r.get('agreement_pct'), '{:.0f}%')} | {fmt(r.get('mean_kl'), '{:.4f}')} | {fmt(r.get('wall_s'))} | "
                   f"{fmt(r.get('peak_rss_mb'), '{:.0f}')} |")
    return "\n".join(out)


def fmnist(rs):
    out = ["| model | method | W/A | iters / act / K | top-1 (10k) | agreement with FP32 | mean KL | wall (s) | peak RSS (MB) | verify | model sha256 |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rs:
        wa = "32/32" if r["method"] == "fp32" else f"W{r['wbits']}A{r['abits']}"
        if r.get("status") == "failed":
            out.append(f"| {r['model']} | {r['method']} | {wa} | failed | | | | | | | {r.get('model_sha256')} |")
            continue
        it = "-" if r.get("iters") in (None, "null") else f"{r['iters']} / {r['act_iters']} / {r['exp_iters']}"
        ver = "-" if "verify_pass" not in r else ("pass" if r["verify_pass"] else "FAIL")
        out.append(f"| {r['model']} | {r['method']} | {wa} | {it} | {fmt(r.get('top1_pct'), '{:.2f}%')} | "
                   f"{fmt(r.get('agreement_pct'), '{:.2f}%')} | {fmt(r.get('mean_kl'), '{:.4f}')} | {fmt(r.get('wall_s'))} | "
                   f"{fmt(r.get('peak_rss_mb'), '{:.0f}')} | {ver} | {r.get('model_sha256')} |")
    return "\n".join(out)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results")
    s, l, f = rows(os.path.join(d, "speed.jsonl")), rows(os.path.join(d, "lite0-accuracy.jsonl")), rows(os.path.join(d, "fmnist-accuracy.jsonl"))
    if s:
        print("## Speed\n\n" + speed(s) + "\n")
    if l:
        print("## EfficientNet-Lite0 accuracy\n\n" + lite0(l) + "\n")
    if f:
        print("## Fashion-MNIST accuracy\n\n" + fmnist(f) + "\n")


if __name__ == "__main__":
    main()
