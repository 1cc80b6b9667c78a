#!/usr/bin/env bash
# What the host agent costs per process: in one run, `stallwatch attach
# --all` over AGENT_BENCH_PROCESSES (50) processes of AGENT_BENCH_WORKERS (8)
# ticking workers each, then `stallwatch attach PID` over one process with
# as many workers in all (400), each watched for AGENT_BENCH_SECONDS (10)
# once it watches every process, after a 2 s warm-up (discovery and
# loading symbols are not the steady cost). CPU is the monitor's utime + stime from /proc/PID/stat, as a
# percentage of one core. Prints:
#   agent_cpu_pct_50x8      the agent (the names keep 50x8 whatever the sizes)
#   single_cpu_pct_1x400    attach on the one big process
#   agent_to_single_ratio   the first over the second (about 1: the agent's
#                           cost grows with workers, not with processes)
#   agent_processes_watched processes the agent said it watched (50 expected)
#   stall_events            stall events in either run (0 expected: a
#                           capture would blur the figures)
# Workers tick every AGENT_BENCH_TICK_MS (10 ms: 800 threads at 1 ms would
# take the machine); the threshold is 1 s so that a starved worker is no stall.
#
#   bench/agent_cost.sh                     (after a build in build/)
#   AGENT_BENCH_SECONDS=30 BUILD_DIR=... bench/agent_cost.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
seconds=${AGENT_BENCH_SECONDS:-10}
procs=${AGENT_BENCH_PROCESSES:-50}
workers=${AGENT_BENCH_WORKERS:-8}
tick_ms=${AGENT_BENCH_TICK_MS:-10}
warmup=2
stallwatch="$build/src/stallwatch"
target="$build/bench/sw_bench_soak_target"
for f in "$stallwatch" "$target"; do [ -x "$f" ] || { echo "agent_cost: no $f (build it first)"; exit 1; }; done
work=$(mktemp -d)
monitor=""
cleanup() {
    [ -n "$monitor" ] && kill "$monitor" 2>/dev/null || true
    exec 3>&- 2>/dev/null || true   # every target reads the FIFO: EOF ends them all
    rm -rf "$work"
}
trap cleanup EXIT
mkfifo "$work/in"
ticks=$(getconf CLK_TCK)

# start_targets COUNT WORKERS: COUNT targets, each ready, all on the FIFO.
start_targets() {
    local i
    for ((i = 0; i < $1; i++)); do
        "$target" --no-victim --workers "$2" --tick-ms "$tick_ms" <"$work/in" >"$work/target.$i" &
    done
    exec 3>"$work/in"
    for ((i = 0; i < $1; i++)); do
        for _ in $(seq 400); do grep -q '^ready' "$work/target.$i" && break; sleep 0.025; done
        grep -q '^ready' "$work/target.$i" || { echo "agent_cost: target $i did not start"; exit 1; }
    done
}
stop_targets() {
    exec 3>&-
    wait 2>/dev/null || true
    rm -f "$work"/target.*
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure NAME EXPECT ARGS...: starts stallwatch with ARGS, and prints its
# CPU % over $seconds once it watches EXPECT processes and has warmed up.
measure() {
    local name=$1 expect=$2 n
    shift 2
    "$stallwatch" "$@" --format json --threshold 1s --output "$work/$name.jsonl" 2>"$work/$name.err" &
    monitor=$!
    # Until every target is watched (the agent loads each one's symbols
    # first), then the warm-up.
    for _ in $(seq 1200); do
        n=$(grep -c '"event":"attached"' "$work/$name.jsonl" 2>/dev/null || true)
        [ "${n:-0}" -ge "$expect" ] && break
        sleep 0.05
    done
    sleep "$warmup"
    local t0 c0 t1 c1
    t0=$(date +%s.%N) c0=$(cpu_ticks "$monitor")
    sleep "$seconds"
    t1=$(date +%s.%N) c1=$(cpu_ticks "$monitor")
    kill -TERM "$monitor"
    wait "$monitor" || { echo "agent_cost: $name: stallwatch exited with $?"; cat "$work/$name.err"; exit 1; }
    monitor=""
    awk -v c=$((c1 - c0)) -v hz="$ticks" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.2f", 100 * c / hz / (t1 - t0)}'
}

start_targets "$procs" "$workers"
# Only the targets: other processes with a table may run on the machine.
agent=$(measure agent "$procs" attach --all --comm 'sw_bench_soak_*')
watched=$(grep -c '"event":"attached"' "$work/agent.jsonl" || true)
stop_targets

start_targets 1 $((procs * workers))
single_pid=$(sed -n 's/^ready pid=//p' "$work/target.0")
single=$(measure single 1 attach "$single_pid")
stop_targets

stalls=$(cat "$work/agent.jsonl" "$work/single.jsonl" | grep -c '"event":"stall"' || true)
echo "agent_cpu_pct_50x8: $agent"
echo "single_cpu_pct_1x400: $single"
echo "agent_to_single_ratio: $(awk -v a="$agent" -v s="$single" 'BEGIN {printf "%.2f", (s > 0) ? a / s : 0}')"
echo "agent_processes_watched: $watched"
echo "stall_events: $stalls"
