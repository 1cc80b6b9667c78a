#!/usr/bin/env bash
# What watching costs the monitor when nothing stalls: `stallwatch attach PID`
# at its default interval (10 ms) and threshold (100 ms) over one process of
# MONITOR_BENCH_WORKERS (1,024) workers that each park for 20 ms, then unpark
# and tick (a pool that is mostly idle: every read sees states change),
# measured for MONITOR_BENCH_SECONDS (10) after a 2 s warm-up. CPU is the
# monitor's utime + stime from /proc/PID/stat, as a percentage of one core.
# Prints, with PASS or MISS against the goal of issue 15:
#   monitor_cpu_pct_1024   the monitor's CPU (goal: at most 0.5)
#   target_cpu_pct_1024    the target's own CPU over the same seconds (context)
#   stall_events           stall reports made (0 expected: a capture would blur it)
#
#   bench/monitor_cost.sh                   (after a build in build/)
#   MONITOR_BENCH_SECONDS=30 BUILD_DIR=... bench/monitor_cost.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
seconds=${MONITOR_BENCH_SECONDS:-10}
workers=${MONITOR_BENCH_WORKERS:-1024}
warmup=2
stallwatch="$build/src/stallwatch"
target="$build/bench/sw_bench_soak_target"
for f in "$stallwatch" "$target"; do [ -x "$f" ] || { echo "monitor_cost: no $f (build it first)"; exit 1; }; done
work=$(mktemp -d)
monitor=""
cleanup() {
    [ -n "$monitor" ] && kill "$monitor" 2>/dev/null || true
    exec 3>&- 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkfifo "$work/in"
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

"$target" --no-victim --workers "$workers" --park-ms 20 <"$work/in" >"$work/target" &
exec 3>"$work/in"
for _ in $(seq 400); do grep -q '^ready' "$work/target" && break; sleep 0.025; done
pid=$(sed -n 's/^ready pid=//p' "$work/target")
[ -n "$pid" ] || { echo "monitor_cost: the target did not start"; exit 1; }

"$stallwatch" attach "$pid" --format json --output "$work/events.jsonl" 2>"$work/err" &
monitor=$!
for _ in $(seq 400); do grep -q '"event":"attached"' "$work/events.jsonl" 2>/dev/null && break; sleep 0.025; done
sleep "$warmup"
t0=$(date +%s.%N) c0=$(cpu_ticks "$monitor") p0=$(cpu_ticks "$pid")
sleep "$seconds"
t1=$(date +%s.%N) c1=$(cpu_ticks "$monitor") p1=$(cpu_ticks "$pid")
kill -TERM "$monitor"
wait "$monitor" || { echo "monitor_cost: stallwatch exited with $?"; cat "$work/err"; exit 1; }
monitor=""
pct() { awk -v c="$1" -v hz="$ticks" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.2f", 100 * c / hz / (t1 - t0)}'; }
mon=$(pct $((c1 - c0)))
stalls=$(grep -c '"event":"stall"' "$work/events.jsonl" || true)
verdict=$(awk -v m="$mon" 'BEGIN {print (m <= 0.5) ? "PASS" : "MISS"}')
echo "monitor_cost: $workers workers parking 20 ms, attach at 10 ms for ${seconds}s: monitor ${mon}% of a core (goal <= 0.5%: $verdict)"
echo "monitor_cpu_pct_1024: $mon"
echo "target_cpu_pct_1024: $(pct $((p1 - p0)))"
echo "stall_events: $stalls"
