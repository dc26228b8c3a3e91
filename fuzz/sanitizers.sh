#!/bin/sh
# Runs test targets under AddressSanitizer and the threaded kernels under ThreadSanitizer.
#
#   fuzz/sanitizers.sh [address|thread|all]     (default all)
#
# address: the library test targets (kernels, data I/O, ONNX, graph, quantization, reconstruction) and the
#          command-line corpus, built with --sanitize=address into .build-asan;
# thread:  the kernel and quantization tests (every parallel loop: GEMM, convolutions, depthwise rows,
#          batches, image decoding) built with --sanitize=thread into .build-tsan.
# Each run's summary line and any sanitizer report are appended to fuzz/sanitizers.log with the date and
# commit. Exit status 1 when a test fails or a sanitizer reports.
set -u
cd "$(dirname "$0")/.."
which=${1:-all}
status=0

run() {  # run NAME SANITIZER FOLDER FILTER [ENV...]
    name=$1 sanitizer=$2 folder=$3 filter=$4
    shift 4
    log=$(mktemp)
    echo "== $name: swift test --sanitize=$sanitizer --filter '$filter'" >&2
    env "$@" swift test --disable-swift-testing --sanitize="$sanitizer" --scratch-path "$folder" --filter "$filter" >"$log" 2>&1
    code=$?
    {
        echo "== $(date -u +%FT%TZ) $name (--sanitize=$sanitizer), commit $(git rev-parse --short HEAD), exit $code"
        grep -E "Executed [0-9]+ tests" "$log" | tail -n 1
        grep -E "ERROR: (AddressSanitizer|ThreadSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|SUMMARY: " "$log" | sort | uniq -c | head -n 20
    } | tee -a fuzz/sanitizers.log
    if [ $code -ne 0 ] || grep -qE "ERROR: (Address|Thread|Leak)Sanitizer|WARNING: ThreadSanitizer" "$log"; then status=1; fi
    rm -f "$log"
}

if [ "$which" = address ] || [ "$which" = all ]; then
    # The end-to-end corpus runs the rapq binary of the same build (RAPQ_BINARY), so the CLI is checked too.
    swift build --sanitize=address --scratch-path .build-asan --product rapq >/dev/null 2>&1
    run address address .build-asan \
        "TensorKernelsTests|DataIOTests|ONNXTests|GraphTests|QuantizationTests|ReconstructionTests|HostileInputCorpusTests" \
        ASAN_OPTIONS=detect_leaks=0 RAPQ_BINARY="$PWD/.build-asan/debug/rapq"
fi
if [ "$which" = thread ] || [ "$which" = all ]; then
    run thread thread .build-tsan "TensorKernelsTests|QuantizationTests|DataIOTests" RAPQ_THREADS=4
fi
exit $status
