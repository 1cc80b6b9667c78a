#!/bin/sh
# Runs one libFuzzer binary for a bounded time over a scratch copy of its
# checked-in seeds (libFuzzer adds the inputs it finds to its first corpus
# directory; the source tree is never written). Exits non-zero on any
# finding: a sanitizer error, a broken invariant, a leak, a timeout, an OOM.
# Leaves <scratch dir>/summary.txt: one line with runs and executions/s.
#
#   run-fuzzer.sh <fuzzer> <seed dir> <scratch dir> <seconds>
set -u
fuzzer=$1 seeds=$2 work=$3 seconds=$4
name=$(basename "$fuzzer")

rm -rf "$work"
mkdir -p "$work/corpus" "$work/findings"
cp "$seeds"/* "$work/corpus/" || exit 1
seed_count=$(ls "$work/corpus" | wc -l)

# -timeout: one input that runs 10 s is a hang. -rss_limit_mb: an input that
# makes a parser allocate without bound is a finding too.
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/findings/" "$work/corpus" \
    >"$work/fuzzer.log" 2>&1
status=$?

if [ "$status" -ne 0 ]; then
    tail -n 100 "$work/fuzzer.log"
    echo "run-fuzzer: $name FOUND A PROBLEM (exit $status); whole log: $work/fuzzer.log"
    echo "run-fuzzer: the input is in $work/findings/:"
    ls -l "$work/findings/"
    echo "run-fuzzer: reproduce: $fuzzer $work/findings/<file>"
    echo "run-fuzzer: keep it as a regression seed: cp $work/findings/<file> $seeds/regress-<what>"
    echo "$name: FAILED (exit $status), see $work/findings/" >"$work/summary.txt"
    exit "$status"
fi

grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$work/fuzzer.log"
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzzer.log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/fuzzer.log")
cov=$(sed -n 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*cov: \([0-9]*\).*/\1/p' "$work/fuzzer.log")
inputs=$(ls "$work/corpus" | wc -l)
echo "$name: $runs runs in ${seconds} s, $rate exec/s, coverage $cov, $seed_count seeds -> $inputs inputs, no finding" |
    tee "$work/summary.txt"
