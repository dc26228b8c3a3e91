#!/usr/bin/env bash
# No-regression check between two builds: the same commands with both binaries, outputs compared with cmp.
#
#   benchmarks/same_bytes.sh OLD_RAPQ NEW_RAPQ [OUT]      (OUT default /tmp/rapq-same-bytes)
#
# Runs `rapq demo` (Fashion-MNIST ResNet, rapq W2A4, 200 iterations per unit; .rapq and QDQ outputs),
# Fashion-MNIST MobileNetV2 rapq W2A4 at 200 iterations, and the ResNet's pot-mse W4A4 QDQ export with
# --residual-input-bits 8 (the QDQ default since 2026-12-04, explicit so older binaries compare) with each
# binary, then prints "same" or "DIFFERENT" per output and the demo's accuracy lines. Exit status 1 when any
# output differs. Build an old binary with `git worktree add /tmp/old COMMIT && cd /tmp/old &&
# swift build -c release --product rapq`.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 OLD_RAPQ NEW_RAPQ [OUT]" >&2; exit 64; }
old=$1 new=$2 out=${3:-/tmp/rapq-same-bytes}
for side in old new; do
  bin=$old; [ $side = new ] && bin=$new
  o=$out/$side
  rm -rf "$o"; mkdir -p "$o"
  "$bin" demo --output-dir "$o/demo" > "$o/demo.log" 2>&1 || echo "$side: demo failed (see $o/demo.log)"
  "$bin" quantize models/fmnist-mobilenetv2.onnx --calib models/fmnist-calib-256.npy --method rapq --wbits 2 --abits 4 \
      --iters 200 -o "$o/mnv2.w2a4.rapq" > "$o/mnv2.log" 2>&1 || echo "$side: MobileNetV2 failed"
  "$bin" quantize models/fmnist-resnet.onnx --calib models/fmnist-calib-256.npy --method pot-mse --wbits 4 --abits 4 \
      --residual-input-bits 8 -o "$o/resnet.pot.qdq.onnx" > "$o/pot.log" 2>&1 || echo "$side: pot-mse failed"
done
status=0
for f in demo/fmnist-resnet.w2a4.rapq demo/fmnist-resnet.w2a4.qdq.onnx mnv2.w2a4.rapq resnet.pot.qdq.onnx; do
  if cmp -s "$out/old/$f" "$out/new/$f"; then echo "same       $f"; else echo "DIFFERENT  $f"; status=1; fi
done
grep -E "^(FP32|naive-pot|rapq)" "$out/new/demo.log"
exit $status
