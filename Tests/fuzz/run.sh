#!/usr/bin/env bash
# Builds the libFuzzer target (address sanitizer on) and fuzzes for a bounded time.
#   Tests/fuzz/run.sh [SECONDS]        default 60; CI runs this
#   JOBS=2 Tests/fuzz/run.sh 1800      longer local runs, one process per job
# Inputs: the seed corpus (Tests/fuzz/corpus), every input that ever failed
# (Tests/fuzz/regressions, replayed first) and what the run finds (a scratch
# folder, not committed). A failure writes crash-* here and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
scratch=".build-fuzz"
# The coverage flags are spelled out: `--sanitize=fuzzer` alone gave a binary with 16-20
# coverage counters instead of ~24,000 ("Loaded 1 modules (16 inline 8-bit counters)"),
# i.e. fuzzing blind. The counter count is checked below.
swift build -c debug --sanitize=fuzzer --sanitize=address -Xswiftc -DFUZZING \
  -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table \
  --product hailuo-fuzz --scratch-path "$scratch" 2>&1 \
  | grep -vE '^\[|^Compiling|warning: the use of|Cannot export local symbol' || true
bin="$scratch/debug/hailuo-fuzz"
[ -x "$bin" ] || { echo "fuzz: no binary at $bin" >&2; exit 1; }
work="$scratch/corpus"
mkdir -p "$work"
# Swift's own crash handler fights ASan; libFuzzer reports instead.
export SWIFT_BACKTRACE=enable=no
counters=$(SWIFT_BACKTRACE=enable=no "$bin" -runs=0 2>&1 | sed -nE 's/.*\(([0-9]+) inline 8-bit counters.*/\1/p' | head -n 1)
echo "fuzz: $counters coverage counters"
[ "${counters:-0}" -gt 1000 ] || { echo "fuzz: the target is not instrumented (${counters:-0} counters)" >&2; exit 1; }
echo "fuzz: replaying $(ls Tests/fuzz/regressions | wc -l) regression inputs"
"$bin" -runs=0 Tests/fuzz/regressions 2>&1 | tail -n 1
echo "fuzz: fuzzing for $seconds s (jobs: ${JOBS:-1})"
log="$scratch/fuzz.log"
set +e
"$bin" -max_total_time="$seconds" -dict=Tests/fuzz/http.dict -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 ${JOBS:+-jobs=$JOBS -workers=$JOBS} "$work" Tests/fuzz/corpus Tests/fuzz/regressions > "$log" 2>&1
status=$?
set -e
[ -n "${JOBS:-}" ] && cat fuzz-*.log > "$log" 2>/dev/null && rm -f fuzz-*.log
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)|^#[0-9]+.*DONE' "$log" || true
if [ "$status" != 0 ]; then
  grep -E 'ERROR|Fatal error|disagrees|whole:|split:|Test unit written|SUMMARY' "$log" | head -n 20
  echo "fuzz: FAILED (exit $status); the input is in crash-*; keep it in Tests/fuzz/regressions once fixed"
  exit 1
fi
echo "fuzz: no crash, no disagreement in $seconds s; corpus now $(ls "$work" | wc -l) inputs"
