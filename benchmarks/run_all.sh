#!/usr/bin/env bash
# Speed benchmark (issue 2 (a)-(c), issue 3 integer-engine throughput), both OPENBLAS_CORETYPE settings.
#
#   benchmarks/run_all.sh [OUT_DIR]               (default OUT_DIR: benchmarks/results)
#
# 1. builds rapq and rapq-bench in release (scratch path .build-bench; SKIP_BUILD=1 uses the binaries as they
#    are, e.g. to measure the same build the accuracy sweeps used);
# 2. for each setting - "as set" (the environment's OPENBLAS_CORETYPE, Haswell when the environment does
#    not set it, as the build machines' global setting is) and "unset" (`env -u OPENBLAS_CORETYPE`, in
#    these commands only):
#    - rapq-bench kernels: sgemm 512^3 and 64x3136x576, Conv2D fwd/bwd 3x3 64->64 and depthwise;
#    - EfficientNet-Lite0 FP32 batch 32, Swift (rapq-bench lite0, also with RAPQ_SIMD=baseline: the depthwise
#      loops without AVX2) and onnxruntime (ort_throughput.py, 2 threads), alternated ROUNDS times, one process per measurement, so both see the same machine load;
#      the ratio is median(Swift images/s) / median(onnxruntime images/s);
#    - rapq-bench integer: integer engine vs FP32 simulation vs FP32 engine on Lite0 batch 32 (W8A8 and
#      W4A4 pot-mse .rapq models; quantized here on assets/photo-crops.npy if absent);
#    - rapq-bench recon: one weight-reconstruction iteration (issue 4) of a ResNet basic block and an inverted
#      residual at batch 32, with glibc's defaults and, in a second process, with
#      GLIBC_TUNABLES=$RECON_TUNABLES (freed memory kept in the heap instead of unmapped; see
#      docs/BENCHMARKS.md "Reconstruction speed").
# Inputs: real photos (assets/foolbox20.npy, tiled to 32). Writes OUT_DIR/speed.jsonl.
set -uo pipefail
source "$(dirname "$0")/common.sh"
OUT="${1:-$ROOT/benchmarks/results}"
ROUNDS="${ROUNDS:-3}"
mkdir -p "$OUT/lite0"
RESULTS="$OUT/speed.jsonl"
: > "$RESULTS"
MODEL="$ROOT/assets/efficientnet-lite0.onnx"
INPUT="$ROOT/assets/foolbox20.npy"
[ "${SKIP_BUILD:-0}" = 1 ] || build_release || exit 1
AS_SET="${OPENBLAS_CORETYPE:-Haswell}"
RECON_TUNABLES="${RECON_TUNABLES:-glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184}"

for b in 8 4; do
  q="$OUT/lite0/lite0-pot-mse-w${b}a${b}.rapq"
  [ -f "$q" ] || "$RAPQ" quantize "$MODEL" --calib "$ROOT/assets/photo-crops.npy" --method pot-mse --wbits $b --abits $b \
                   --activation-samples 200 -o "$q" > /dev/null
done

for setting in "$AS_SET" unset; do
  if [ "$setting" = unset ]; then run=(env -u OPENBLAS_CORETYPE); else run=(env "OPENBLAS_CORETYPE=$setting"); fi
  echo "== OPENBLAS_CORETYPE=$setting" >&2
  "${run[@]}" "$BENCH" kernels --reps 7 | tee -a "$RESULTS"
  for r in $(seq "$ROUNDS"); do
    "${run[@]}" "$BENCH" lite0 --model "$MODEL" --batch 32 --runs 5 --input "$INPUT" | tee -a "$RESULTS"
    "${run[@]}" RAPQ_SIMD=baseline "$BENCH" lite0 --model "$MODEL" --batch 32 --runs 5 --input "$INPUT" | tee -a "$RESULTS"
    "${run[@]}" "$PY" "$ROOT/benchmarks/ort_throughput.py" "$MODEL" --batch 32 --threads 2 --runs 10 --input "$INPUT" | tee -a "$RESULTS"
  done
  "${run[@]}" "$BENCH" memory --model "$MODEL" --batch 32 --input "$INPUT" | tee -a "$RESULTS"
  for b in 8 4; do
    "${run[@]}" "$BENCH" integer --model "$OUT/lite0/lite0-pot-mse-w${b}a${b}.rapq" --reference "$MODEL" --batch 32 --runs 3 \
      --input "$INPUT" | tee -a "$RESULTS"
  done
  "${run[@]}" "$BENCH" recon --iters 5 --reps 5 | tee -a "$RESULTS"
  "${run[@]}" "GLIBC_TUNABLES=$RECON_TUNABLES" "$BENCH" recon --iters 5 --reps 5 | tee -a "$RESULTS"
done

# Summary: median over rounds of each engine's images/s, and the Swift/onnxruntime ratio, per setting.
"$PY" - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for setting in sorted({r.get("openblas_coretype") for r in rows}, key=str):
    fp32 = [r for r in rows if r.get("bench") == "fp32-inference" and r["openblas_coretype"] == setting]
    swift = [r["images_per_s"] for r in fp32 if r.get("depthwise_vector_unit") != "baseline"]
    baseline = [r["images_per_s"] for r in fp32 if r.get("depthwise_vector_unit") == "baseline"]
    ort = [r["images_per_s"] for r in rows if r.get("engine") == "onnxruntime" and r["openblas_coretype"] == setting]
    peak = [r["peak_rss_mb"] for r in rows if r.get("bench") in ("fp32-inference", "memory") and r["openblas_coretype"] == setting]
    if swift and ort:
        s, o = statistics.median(swift), statistics.median(ort)
        print(json.dumps({"summary": "lite0-fp32-b32", "openblas_coretype": setting, "swift_images_per_s": round(s, 2),
                          "ort_images_per_s": round(o, 2), "ratio_swift_over_ort": round(s / o, 3),
                          "swift_rounds": swift, "ort_rounds": ort, "swift_peak_rss_mb_max": round(max(peak), 1),
                          "swift_baseline_simd_rounds": baseline}))
        print(f"# OPENBLAS_CORETYPE={setting}: Swift {s:.2f} img/s, onnxruntime {o:.2f} img/s, ratio {s/o:.3f} "
              f"(target >= 0.7), Swift peak RSS {max(peak):.0f} MB (target < 1536)")
        if baseline:
            print(f"#   Swift with RAPQ_SIMD=baseline (no AVX2 depthwise loops): {statistics.median(baseline):.2f} img/s")
PY
