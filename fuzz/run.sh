#!/bin/sh
# Fuzzes the readers a user's files reach (ONNX, .npy, .rapq) with libFuzzer and AddressSanitizer.
#
#   fuzz/run.sh [SECONDS]      (default 60)
#
# Builds Sources/rapq-fuzz with -sanitize=fuzzer,address into .build-fuzz (a separate build folder, release),
# writes a seed corpus into fuzz/seeds (the ONNX conformance models, a .npy array and a quantized ResNet,
# each prefixed with the byte that selects its reader), and runs for SECONDS, growing fuzz/corpus. A crash
# is saved as crash-<hash> in the current folder; replay it with `swift run rapq-fuzz crash-<hash>`.
# Leak detection is off: LeakSanitizer reports the harness's one-time reference network (a global `Data`)
# as leaked, a false positive that would stop every run.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}

swift build -c release --scratch-path .build-fuzz --product rapq-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING

mkdir -p fuzz/seeds fuzz/corpus
for model in Tests/ONNXTests/Resources/node/*/model.onnx; do
    { printf '\000'; cat "$model"; } > "fuzz/seeds/onnx-$(basename "$(dirname "$model")")"
done
{ printf '\001'; cat models/fmnist-test-1k-labels.npy; } > fuzz/seeds/npy-labels
swift build --product rapq
.build/debug/rapq quantize models/fmnist-resnet.onnx --calib models/fmnist-calib-256.npy --method pot-mse --wbits 2 \
    -o fuzz/seeds/resnet.rapq.tmp >/dev/null
{ printf '\002'; cat fuzz/seeds/resnet.rapq.tmp; } > fuzz/seeds/rapq-resnet
rm fuzz/seeds/resnet.rapq.tmp
swift build --product rapq-fuzz
.build/debug/rapq-fuzz --manifest-seed fuzz/seeds/rapq-manifest

ASAN_OPTIONS=detect_leaks=0 .build-fuzz/release/rapq-fuzz fuzz/corpus fuzz/seeds -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=262144 -print_final_stats=1 -detect_leaks=0
