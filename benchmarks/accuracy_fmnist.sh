#!/usr/bin/env bash
# Issue 4 accuracy table: the two Fashion-MNIST models, every method, at W4A4 and W2A4.
#
#   benchmarks/accuracy_fmnist.sh [OUT_DIR]       (default OUT_DIR: benchmarks/results)
#
# Environment overrides: ITERS (weight-reconstruction iterations per unit, default 1000, the tool's), ACT_ITERS
# (default 0, the tool's), EXP_ITERS (RAPQ exponent iterations K; default: each method's own, rapq 0 and
# rapq-reference 500; recorded as null then), SEED (default 0), MODELS, CONFIGS, METHODS, QUANTIZE_ARGS (extra
# `rapq quantize` options for the reconstruction methods, recorded in each line).
# Calibration: models/fmnist-calib-256.npy (256 training images). Evaluation: the full 10k test set
# assets/fmnist-test-10k.npy (top-1, agreement with FP32). `rapq verify` runs on every output with
# models/fmnist-test-1k.npy as the integer-vs-simulation data (pass = exit 0).
# Writes OUT_DIR/fmnist-accuracy.jsonl, one line per run, as each run finishes.
set -uo pipefail
source "$(dirname "$0")/common.sh"
OUT="${1:-$ROOT/benchmarks/results}"
mkdir -p "$OUT/fmnist"
RESULTS="$OUT/fmnist-accuracy.jsonl"
ITERS="${ITERS:-1000}"; ACT_ITERS="${ACT_ITERS:-0}"; EXP_ITERS="${EXP_ITERS:-}"; SEED="${SEED:-0}"
MODELS="${MODELS:-resnet mobilenetv2}"
CONFIGS="${CONFIGS:-4:4 2:4}"
METHODS="${METHODS:-rtn naive-pot pot-mse rapq naive-pot+recon brecq rapq-reference}"
QUANTIZE_ARGS="${QUANTIZE_ARGS:-}"
CALIB="$ROOT/models/fmnist-calib-256.npy"
DATA="$ROOT/assets/fmnist-test-10k.npy"
LABELS="$ROOT/assets/fmnist-test-10k-labels.npy"
VERIFY_DATA="$ROOT/models/fmnist-test-1k.npy"
[ -x "$RAPQ" ] || build_release || exit 1
: > "$RESULTS"

for model in $MODELS; do
  onnx="$ROOT/models/fmnist-$model.onnx"
  stamp="\"model_mtime\":\"$(date -r "$onnx" -u +%FT%TZ)\",\"model_sha256\":\"$(sha256sum "$onnx" | cut -c1-12)\""
  line=$("$RAPQ" eval "$onnx" --data "$DATA" --labels "$LABELS" --batch 500 | tail -n 1)
  echo "{\"model\":\"fmnist-$model\",\"method\":\"fp32\",\"wbits\":32,\"abits\":32,$(eval_json "$line"),$stamp}" | tee -a "$RESULTS"
  for cfg in $CONFIGS; do
    w=${cfg%%:*}; a=${cfg##*:}
    for m in $METHODS; do
      tag="$model-$m-w${w}a${a}"; q="$OUT/fmnist/$tag.rapq"; tf="$OUT/fmnist/time-$tag.txt"
      recon=""
      case "$m" in brecq|naive-pot+recon|rapq|rapq-reference)
        recon="--iters $ITERS --act-iters $ACT_ITERS ${EXP_ITERS:+--exp-iters $EXP_ITERS} $QUANTIZE_ARGS";; esac
      # shellcheck disable=SC2086
      if timed "$tf" "$RAPQ" quantize "$onnx" --calib "$CALIB" --method "$m" --wbits "$w" --abits "$a" --seed "$SEED" \
           $recon -o "$q" > "$OUT/fmnist/log-$tag.txt" 2>&1; then
        line=$("$RAPQ" eval "$q" --data "$DATA" --labels "$LABELS" --reference "$onnx" --batch 500 | tail -n 1)
        if "$RAPQ" verify "$q" --data "$VERIFY_DATA" > "$OUT/fmnist/verify-$tag.txt" 2>&1; then v=true; else v=false; fi
        iters=null; acti=null; expi=null
        [ -n "$recon" ] && { iters=$ITERS; acti=$ACT_ITERS; expi=${EXP_ITERS:-null}; }
        echo "{\"model\":\"fmnist-$model\",\"method\":\"$m\",\"wbits\":$w,\"abits\":$a,\"iters\":$iters,\"act_iters\":$acti,\"exp_iters\":$expi,\"extra_args\":\"$([ -n "$recon" ] && echo "$QUANTIZE_ARGS")\",\"seed\":$SEED,$(eval_json "$line"),$(time_json "$tf"),\"verify_pass\":$v,$stamp}" | tee -a "$RESULTS"
      else
        echo "{\"model\":\"fmnist-$model\",\"method\":\"$m\",\"wbits\":$w,\"abits\":$a,\"status\":\"failed\",\"log\":\"$OUT/fmnist/log-$tag.txt\",$stamp}" | tee -a "$RESULTS"
      fi
    done
  done
done
echo "wrote $RESULTS" >&2
