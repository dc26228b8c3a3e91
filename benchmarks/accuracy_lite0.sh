#!/usr/bin/env bash
# Issue 3 accuracy table: EfficientNet-Lite0 after post-training quantization, on real photos.
#
#   benchmarks/accuracy_lite0.sh [OUT_DIR]        (default OUT_DIR: benchmarks/results)
#
# Calibration: assets/photo-crops.npy (200 crops of the 20 unlabelled scikit-image/matplotlib/scikit-learn
# photos). Evaluation: assets/foolbox20.npy (20 labelled ImageNet photos from foolbox, disjoint from the
# calibration photos): top-1/top-5 against the labels, top-1 agreement and mean KL to the FP32 model.
# Configurations W8A8 W4A8 W4A4 W2A4 for rapq's rtn, naive-pot, pot-mse (first/last layer at 8 bits, the
# tool's default; activation quantizers initialised on all 200 calibration samples) and onnxruntime's
# quantize_static (QDQ, per-channel, MinMax and Entropy; every layer at the given width; no 2-bit type).
# Environment: CONFIGS, METHODS, ORT_CALIBS select subsets; APPEND=1 appends to the results file.
# Each quantize run is timed with /usr/bin/time (wall seconds, peak RSS).
# Writes OUT_DIR/lite0-accuracy.jsonl (one JSON line per run) and keeps the .rapq files in OUT_DIR/lite0.
set -uo pipefail
source "$(dirname "$0")/common.sh"
OUT="${1:-$ROOT/benchmarks/results}"
mkdir -p "$OUT/lite0"
RESULTS="$OUT/lite0-accuracy.jsonl"
[ "${APPEND:-0}" = 1 ] || : > "$RESULTS"
MODEL="$ROOT/assets/efficientnet-lite0.onnx"
CALIB="$ROOT/assets/photo-crops.npy"
DATA="$ROOT/assets/foolbox20.npy"
LABELS="$ROOT/assets/foolbox20-labels.npy"
CONFIGS="${CONFIGS:-8:8 4:8 4:4 2:4}"
METHODS="${METHODS-rtn naive-pot pot-mse}"
# entropy = quantize_static's own Entropy (its defaults, 128 histogram bins, give the MinMax range in
# onnxruntime 1.32); entropy-2048 = Entropy ranges from 2048-bin histograms (see ort_quantize_static.py).
ORT_CALIBS="${ORT_CALIBS-minmax entropy entropy-2048}"
ACT_SAMPLES="${ACT_SAMPLES:-200}"
[ -x "$RAPQ" ] || build_release || exit 1

# FP32 reference row.
line=$("$RAPQ" eval "$MODEL" --data "$DATA" --labels "$LABELS" --reference "$MODEL" | tail -n 1)
[ "${APPEND:-0}" = 1 ] || echo "{\"model\":\"efficientnet-lite0\",\"engine\":\"rapq\",\"method\":\"fp32\",\"wbits\":32,\"abits\":32,$(eval_json "$line")}" | tee -a "$RESULTS"

for cfg in $CONFIGS; do
  w=${cfg%%:*}; a=${cfg##*:}
  for m in $METHODS; do
    q="$OUT/lite0/lite0-$m-w${w}a${a}.rapq"; tf="$OUT/lite0/time-$m-w${w}a${a}.txt"
    if timed "$tf" "$RAPQ" quantize "$MODEL" --calib "$CALIB" --method "$m" --wbits "$w" --abits "$a" \
         --activation-samples "$ACT_SAMPLES" --seed 0 -o "$q" > "$OUT/lite0/log-$m-w${w}a${a}.txt" 2>&1; then
      line=$("$RAPQ" eval "$q" --data "$DATA" --labels "$LABELS" --reference "$MODEL" | tail -n 1)
      echo "{\"model\":\"efficientnet-lite0\",\"engine\":\"rapq\",\"method\":\"$m\",\"wbits\":$w,\"abits\":$a,\"calib\":\"photo-crops.npy (200)\",\"act_samples\":$ACT_SAMPLES,$(eval_json "$line"),$(time_json "$tf")}" | tee -a "$RESULTS"
    else
      echo "{\"model\":\"efficientnet-lite0\",\"engine\":\"rapq\",\"method\":\"$m\",\"wbits\":$w,\"abits\":$a,\"status\":\"failed\",\"log\":\"$OUT/lite0/log-$m-w${w}a${a}.txt\"}" | tee -a "$RESULTS"
    fi
  done
  for c in $ORT_CALIBS; do
    tf="$OUT/lite0/time-ort-$c-w${w}a${a}.txt"
    bins=0; [ "$c" = entropy-2048 ] && bins=2048
    rec=$(timed "$tf" "$PY" "$ROOT/benchmarks/ort_quantize_static.py" "$MODEL" --calib "$CALIB" --data "$DATA" --labels "$LABELS" \
            --calibrate "${c%-2048}" --entropy-bins "$bins" --wbits "$w" --abits "$a" -o "$OUT/lite0/ort-$c-w${w}a${a}.onnx" 2> "$OUT/lite0/log-ort-$c-w${w}a${a}.txt" | tail -n 1)
    [ -n "$rec" ] || rec='{"status":"failed"}'
    echo "${rec%\}},$(time_json "$tf")}" | tee -a "$RESULTS"
    rm -f "$OUT/lite0/ort-$c-w${w}a${a}.onnx"
  done
done
echo "wrote $RESULTS" >&2
