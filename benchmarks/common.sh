# Shared helpers of the benchmark scripts (sourced, not run).
# RAPQ: the CLI built in the benchmark scratch path; PY: the tools virtualenv.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRATCH="${SCRATCH:-$ROOT/.build-bench}"
RAPQ="$SCRATCH/release/rapq"
BENCH="$SCRATCH/release/rapq-bench"
PY="${PY:-$ROOT/.venv-tools/bin/python}"

build_release() {
  (cd "$ROOT" && swift build -c release --product rapq --scratch-path "$SCRATCH" >&2 \
     && swift build -c release --product rapq-bench --scratch-path "$SCRATCH" >&2)
}

# eval_json SUMMARY_LINE -> JSON fields (no braces) from `rapq eval`'s summary line.
eval_json() {
  local line="$1" top1 top5 agree kl
  top1=$(sed -n 's/.*top-1 \([0-9.]*\)%.*/\1/p' <<<"$line")
  top5=$(sed -n 's/.*top-5 \([0-9.]*\)%.*/\1/p' <<<"$line")
  agree=$(sed -n 's/.*agreement with FP32 \([0-9.]*\)%.*/\1/p' <<<"$line")
  kl=$(sed -n 's/.*mean KL to FP32 \([0-9.eE+-]*\).*/\1/p' <<<"$line")
  printf '"top1_pct":%s,"top5_pct":%s,"agreement_pct":%s,"mean_kl":%s' \
    "${top1:-null}" "${top5:-null}" "${agree:-null}" "${kl:-null}"
}

# timed OUT_TIMEFILE CMD... : runs CMD under /usr/bin/time, writing "wall_s peak_kb" to OUT_TIMEFILE.
timed() {
  local tf="$1"; shift
  /usr/bin/time -f "%e %M" -o "$tf" "$@"
}

# time_json TIMEFILE -> "wall_s":..,"peak_rss_mb":..
time_json() {
  local wall kb
  read -r wall kb < <(tail -n 1 "$1")
  printf '"wall_s":%s,"peak_rss_mb":%s' "$wall" "$(awk -v k="$kb" 'BEGIN{printf "%.0f", k/1024}')"
}
