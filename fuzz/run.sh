#!/bin/sh
# Fuzzes the readers a user's files reach with libFuzzer and AddressSanitizer.
#
#   fuzz/run.sh [TARGET] [SECONDS]     TARGET: onnx, npy, rapq, manifest, checkpoint, payload or all (default all);
#                                      SECONDS default 60
#
# Builds Sources/rapq-fuzz with -sanitize=fuzzer,address into .build-fuzz (a separate build folder, release),
# writes the seed corpus of TARGET into fuzz/seeds/TARGET (the ONNX conformance models; a .npy array; a
# quantized ResNet; the small reference network's manifest; a checkpoint state; its payload; for `all`, each prefixed
# with the byte that selects its reader), and runs for SECONDS, growing fuzz/corpus/TARGET. A crash is saved
# as crash-<hash> in the current folder; replay it with `RAPQ_FUZZ_TARGET=TARGET swift run rapq-fuzz crash-<hash>`
# (without the variable for `all`). The last lines of libFuzzer's output (executions, coverage) are
# appended to fuzz/runs.log with the date and the target.
# Swift's own backtracer is off: libFuzzer and AddressSanitizer report a trap with its stack, and the backtracer's
# helper process could hold the output pipe open after the crash.
# Leak detection is off: LeakSanitizer reports the harness's one-time reference network (a global `Data`)
# as leaked, a false positive that would stop every run.
set -eu
cd "$(dirname "$0")/.."
case "${1:-}" in
    onnx|npy|rapq|manifest|checkpoint|payload|all) target=$1; shift ;;
    ''|[0-9]*) target=all ;;
    *) echo "fuzz/run.sh: unknown target '$1' (onnx, npy, rapq, manifest, checkpoint, payload or all)" >&2; exit 64 ;;
esac
seconds=${1:-60}
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- Sources 2>/dev/null || echo "+changes")

swift build -c release --scratch-path .build-fuzz --product rapq-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING

# Seeds of every reader, raw, in a scratch folder; then copied into the target's seed folder.
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
for model in Tests/ONNXTests/Resources/node/*/model.onnx; do
    cp "$model" "$raw/onnx-$(basename "$(dirname "$model")")"
done
cp models/fmnist-test-1k-labels.npy "$raw/npy-labels"
swift build --product rapq --product rapq-fuzz >/dev/null
.build/debug/rapq quantize models/fmnist-resnet.onnx --calib models/fmnist-calib-256.npy --method pot-mse --wbits 2 \
    --quiet -o "$raw/rapq-resnet.rapq" >/dev/null
mv "$raw/rapq-resnet.rapq" "$raw/rapq-resnet"
.build/debug/rapq-fuzz --seeds "$raw"

seeds=fuzz/seeds/$target corpus=fuzz/corpus/$target
mkdir -p "$seeds" "$corpus"
index=0
for t in onnx npy rapq manifest checkpoint payload; do
    for f in "$raw/$t"-*; do
        [ -f "$f" ] || continue
        if [ "$target" = all ]; then
            { printf "\\$(printf '%03o' $index)"; cat "$f"; } > "$seeds/$(basename "$f")"
        elif [ "$target" = "$t" ]; then
            cp "$f" "$seeds/"
        fi
    done
    index=$((index + 1))
done

export RAPQ_FUZZ_TARGET=$target
log=$(mktemp)
SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 .build-fuzz/release/rapq-fuzz "$corpus" "$seeds" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=262144 -print_final_stats=1 -detect_leaks=0 2>&1 | tee "$log" | grep -vE '^#[0-9]+\s+(NEW|REDUCE|pulse)' || true
status=0
grep -q "Done [0-9]* runs" "$log" || status=1
{ echo "== $(date -u +%FT%TZ) target $target, $seconds s, commit $commit (at the start)"; grep -E "^(Done|stat::|#[0-9]+\s+DONE)|SUMMARY|ERROR|deadly signal|Test unit written" "$log"; } >> fuzz/runs.log
rm -f "$log"
exit $status
