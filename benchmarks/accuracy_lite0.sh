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
# Reconstruction methods (issue 4: rapq, naive-pot+recon, brecq, rapq-reference) take their options from
# QUANTIZE_ARGS (e.g. "--iters 200 --exp-iters 100"; the tool's defaults otherwise), CALIB overrides the
# calibration file (e.g. the 1024 samples of tools/make_calibration_1024.py), TAG names the output files
# of a sweep (default: none). Every JSON line records the calibration file and QUANTIZE_ARGS.
# Each quantize run is timed with /usr/bin/time (wall seconds, peak RSS).
# Writes OUT_DIR/lite0-accuracy.jsonl (one JSON line per run) and keeps the .rapq files in OUT_DIR/lite0.
set -uo pipefail
source "$(dirname "$0")/common.sh"
OUT="${1:-$ROOT/benchmarks/results}"
mkdir -p "$OUT/lite0"
RESULTS="$OUT/lite0-accuracy.jsonl"
[ "${APPEND:-0}" = 1 ] || : > "$RESULTS"
MODEL="$ROOT/assets/efficientnet-lite0.onnx"
CALIB="${CALIB:-$ROOT/assets/photo-crops.npy}"
QUANTIZE_ARGS="${QUANTIZE_ARGS:-}"
TAG="${TAG:+-$TAG}"
DATA="$ROOT/assets/foolbox20.npy"
LABELS="$ROOT/assets/foolbox20-labels.npy"
# Held-out crops (10 per labelled photo, tools/prepare_photos.py): second evaluation of every rapq model.
CROPS="$ROOT/assets/foolbox20-crops.npy"
CROP_LABELS="$ROOT/assets/foolbox20-crops-labels.npy"

# crops_json MODEL -> ',"crops_top1_pct":..,...' (the eval fields on the held-out crops), or nothing
# when the crops have not been prepared.
crops_json() {
  [ -f "$CROPS" ] || return 0
  local line
  line=$("$RAPQ" eval "$1" --data "$CROPS" --labels "$CROP_LABELS" --reference "$MODEL" | tail -n 1)
  printf ',%s' "$(eval_json "$line" | sed 's/"\([a-z0-9_]*\)":/"crops_\1":/g')"
}
CONFIGS="${CONFIGS:-8:8 4:8 4:4 2:4}"
METHODS="${METHODS-rtn naive-pot pot-mse}"
# entropy = quantize_static's own Entropy (its defaults, 128 histogram bins, give the MinMax range in
# onnxruntime 1.32); entropy-2048 = Entropy ranges from 2048-bin histograms (see ort_quantize_static.py).
ORT_CALIBS="${ORT_CALIBS-minmax entropy entropy-2048}"
ACT_SAMPLES="${ACT_SAMPLES:-200}"
[ -x "$RAPQ" ] || build_release || exit 1

# FP32 reference row.
line=$("$RAPQ" eval "$MODEL" --data "$DATA" --labels "$LABELS" --reference "$MODEL" | tail -n 1)
[ "${APPEND:-0}" = 1 ] || echo "{\"model\":\"efficientnet-lite0\",\"engine\":\"rapq\",\"method\":\"fp32\",\"wbits\":32,\"abits\":32,$(eval_json "$line")$(crops_json "$MODEL")}" | tee -a "$RESULTS"

for cfg in $CONFIGS; do
  w=${cfg%%:*}; a=${cfg##*:}
  for m in $METHODS; do
    run="$m-w${w}a${a}$TAG"
    q="$OUT/lite0/lite0-$run.rapq"; tf="$OUT/lite0/time-$run.txt"
    # shellcheck disable=SC2086  # QUANTIZE_ARGS is a list of options
    if timed "$tf" "$RAPQ" quantize "$MODEL" --calib "$CALIB" --method "$m" --wbits "$w" --abits "$a" \
         --activation-samples "$ACT_SAMPLES" --seed 0 $QUANTIZE_ARGS -o "$q" > "$OUT/lite0/log-$run.txt" 2>&1; then
      line=$("$RAPQ" eval "$q" --data "$DATA" --labels "$LABELS" --reference "$MODEL" | tail -n 1)
      verified=$("$RAPQ" verify "$q" > /dev/null 2>&1 && echo true || echo false)
      echo "{\"model\":\"efficientnet-lite0\",\"engine\":\"rapq\",\"method\":\"$m\",\"wbits\":$w,\"abits\":$a,\"calib\":\"$(basename "$CALIB")\",\"quantize_args\":\"$QUANTIZE_ARGS\",\"seed\":0,\"act_samples\":$ACT_SAMPLES,\"verify_pot\":$verified,$(eval_json "$line")$(crops_json "$q"),$(time_json "$tf")}" | tee -a "$RESULTS"
    else
      echo "{\"model\":\"efficientnet-lite0\",\"engine\":\"rapq\",\"method\":\"$m\",\"wbits\":$w,\"abits\":$a,\"status\":\"failed\",\"log\":\"$OUT/lite0/log-$run.txt\"}" | tee -a "$RESULTS"
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
