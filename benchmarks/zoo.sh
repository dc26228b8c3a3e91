#!/usr/bin/env bash
# The torchvision zoo end to end (issue 14): for each model and export variant, inspect, run against
# onnxruntime, quantize (pot-mse W8A8, and rapq W4A8 for a few iterations with ZOO_RAPQ_ITERS > 0),
# verify with the integer engine (on the first 32 evaluation samples), and the QDQ export's float
# convolutions left in onnxruntime.
#
#   benchmarks/zoo.sh [MODEL...]            # default: every model exported by tools/export_torchvision_zoo.py
#   ZOO_VARIANTS="onnx b1.onnx folded.onnx" ZOO_RAPQ_ITERS=20 benchmarks/zoo.sh resnet18
#
# Writes one JSON line per model and variant to benchmarks/results/zoo/zoo-DATE.jsonl and a summary table
# on stdout. Models are exported (seeded random weights, non-trivial BatchNorm) into assets/zoo first.
set -uo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
ZOO=assets/zoo
VARIANTS="${ZOO_VARIANTS:-onnx b1.onnx folded.onnx op13.onnx dynamo.onnx}"
ITERS="${ZOO_RAPQ_ITERS:-0}"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet18 resnet50 mobilenet_v2 mobilenet_v3_small mobilenet_v3_large efficientnet_b0
                                    shufflenet_v2_x1_0 squeezenet1_1 densenet121 googlenet regnet_x_400mf mnasnet0_5 vgg11_bn convnext_tiny)
if [ ! -f "$ZOO/${models[0]}.onnx" ]; then
  WITH_TORCH=1 tools/setup_venv.sh >&2
  "$PY" -m pip install -q --disable-pip-version-check torchvision onnxscript >&2
  "$PY" tools/export_torchvision_zoo.py --out "$ZOO" --models "${models[@]}" >&2
fi
[ -n "${ZOO_NO_BUILD:-}" ] || build_release >/dev/null || exit 1
out=benchmarks/results/zoo
mkdir -p "$out"
log="$out/zoo-$(date -u +%Y%m%d).jsonl"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() {  # step NAME CMD...: runs CMD, records its status and the last line of its error output
  local name="$1"; shift
  if "$@" >"$work/$name.out" 2>"$work/$name.err"; then echo ok; else echo "fail: $(cat "$work/$name.err" "$work/$name.out" | grep -iE 'error|fail|cannot|not' | head -2 | tr '\n' ' ' | cut -c1-200)"; fi
}

printf '%-22s %-12s %-8s %-26s %-8s %-8s %-8s %-8s %s\n' model variant inspect "run (rel. diff, top-1)" pot-mse verify rapq verify "qdq float convs"
for m in "${models[@]}"; do
  for v in $VARIANTS; do
    f="$ZOO/$m.$v"
    [ -f "$f" ] || continue
    inspect=$(step inspect "$RAPQ" inspect "$f")
    run=$(step run "$RAPQ" run "$f" -i "$ZOO/$m-eval.npy" -o "$work/logits.npy" --batch 16)
    cmp="-"
    if [ "$run" = ok ]; then
      cmp=$("$PY" benchmarks/zoo_compare.py "$f" "$ZOO/$m-eval.npy" "$work/logits.npy" 2>/dev/null)
    fi
    [ -f "$ZOO/$m-verify.npy" ] || "$PY" -c "import numpy as n,sys; n.save(sys.argv[2], n.load(sys.argv[1])[:32])" "$ZOO/$m-eval.npy" "$ZOO/$m-verify.npy"
    pot=$(step pot "$RAPQ" quantize "$f" --calib "$ZOO/$m-input.npy" --method pot-mse --wbits 8 --abits 8 --residual-input-bits 8 -o "$work/pot.rapq")
    potv="-"; [ "$pot" = ok ] && potv=$(step potv "$RAPQ" verify "$work/pot.rapq" --data "$ZOO/$m-verify.npy")
    qdq="-"
    if [ "$pot" = ok ] && "$RAPQ" quantize "$f" --calib "$ZOO/$m-input.npy" --method pot-mse --wbits 8 --abits 8 -o "$work/pot.qdq.onnx" >/dev/null 2>&1; then
      qdq=$("$PY" tools/check_qdq_onnxruntime.py "$work/pot.qdq.onnx" "$ZOO/$m-verify.npy" 2>/dev/null | tail -1 \
            | "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d.get("float_convs", d))' 2>/dev/null || echo "ort failed")
    fi
    rapq="-"; rapqv="-"
    if [ "$ITERS" -gt 0 ]; then
      rapq=$(step rapq "$RAPQ" quantize "$f" --calib "$ZOO/$m-input.npy" --method rapq --wbits 4 --abits 8 --iters "$ITERS" -o "$work/rapq.rapq")
      [ "$rapq" = ok ] && rapqv=$(step rapqv "$RAPQ" verify "$work/rapq.rapq" --data "$ZOO/$m-verify.npy")
    fi
    printf '%-22s %-12s %-8s %-26s %-8s %-8s %-8s %-8s %s\n' "$m" "$v" "${inspect:0:8}" "${cmp}" "${pot:0:8}" "${potv:0:8}" "${rapq:0:8}" "${rapqv:0:8}" "$qdq"
    for s in inspect run pot potv rapq rapqv; do
      v2=${!s}; [ "$v2" != ok ] && [ "$v2" != - ] && echo "    $s: $v2"
    done
    "$PY" - "$m" "$v" "$inspect" "$run" "$cmp" "$pot" "$potv" "$rapq" "$rapqv" "$qdq" >>"$log" <<'PY'
import json, sys
keys = ["model", "variant", "inspect", "run", "run_vs_ort", "pot_mse_w8a8", "pot_mse_verify", "rapq_w4a8", "rapq_verify", "qdq_float_convs"]
print(json.dumps(dict(zip(keys, sys.argv[1:]))))
PY
  done
done
echo "results appended to $log" >&2
