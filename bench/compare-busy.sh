#!/usr/bin/env bash
# One-shot dumps of a busy process, side by side (issue 15, goal 2). The
# target (bench/busy_target.c) runs 8 threads spinning on the CPU (more than
# this machine's cores: they take turns) and one blocked in clock_nanosleep
# about 27 frames deep. Over COMPARE_ROUNDS rounds (5), each in a rotated
# order after one untimed warm-up run of each, it runs
#   eu-stack -p PID
#   eu-stack -p PID -i -s                       (inlines and source lines)
#   gdb -p PID -batch -ex 'thread apply all bt' (if gdb is installed; as
#                                                root, installed if missing)
#   stallwatch dump PID --all-threads           (text)
#   stallwatch dump PID --all-threads --full    (text, file:line on every frame)
#   stallwatch dump PID --all-threads --format json
# each under bench/stop_sampler.c (sw_bench_stop_sampler), which times the
# command and reads the 8 healthy threads' states from /proc every 100 us
# while it runs: how many were seen in a stop, the longest stop seen, and
# whether all were seen stopped at once (a whole-process freeze). A stop
# shorter than a scan may go unseen; one seen once counts. Each dump runs
# with STALLWATCH_DUMP_PHASES=1: the phases of its last round are printed.
# About 20 s with 5 rounds.
#
# Two setups, one after the other in this run. "service": the target runs in
# a session of its own (setsid), as a daemon does; with the kernel's
# autogroup scheduling (sched_autogroup_enabled, Debian's default) its
# spinning threads then share the CPUs as one group against the tool's.
# "same_session": the target runs in the bench's own session, so that each
# spinning thread competes with the tool on its own, the harder case; its
# figures are prefixed with "same_session_".
#
# Prints `name: value` lines, all measured in this one run (medians over the
# rounds; stops: the worst round), then the goals with PASS or MISS for each
# setup:
#   dump_vs_eu_stack        eu-stack -p wall / dump --all-threads wall (goal >= 1.0)
#   full_vs_eu_stack_is     eu-stack -p -i -s wall / dump --all-threads --full wall (goal >= 3.0)
#   dump_healthy_seen_stopped  scans that saw a healthy thread stopped during
#                           any dump run (goal: 0, "healthy threads never seen stopped")
#   json_vs_eu_stack, json_vs_eu_stack_is  the JSON output (file:line on every
#                           frame) against both, for context
#
#   bench/compare-busy.sh                     (after a build in build/; as root)
#   COMPARE_ROUNDS=9 BUILD_DIR=... bench/compare-busy.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
rounds=${COMPARE_ROUNDS:-5}
stallwatch="$build/src/stallwatch"
target="$build/bench/sw_bench_busy_target"
sampler="$build/bench/sw_bench_stop_sampler"
for f in "$stallwatch" "$target" "$sampler"; do
    [ -x "$f" ] || { echo "compare-busy: no $f (build it first)"; exit 1; }
done
command -v eu-stack >/dev/null || { echo "compare-busy: eu-stack is not installed (elfutils)"; exit 1; }
export DEBUGINFOD_URLS=""  # no tool may go to the network
export STALLWATCH_DUMP_PHASES=1  # each dump says where its time went (standard error, kept below)

have_gdb=1
if ! command -v gdb >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && apt-get install -y gdb >/dev/null 2>&1; then
        echo "compare-busy: installed gdb"
    else
        have_gdb=0
        echo "compare-busy: gdb is not installed: skipped"
    fi
fi

work=$(mktemp -d)
target_pid=""
cleanup() {
    exec 3>&- 2>/dev/null || true
    [ -n "$target_pid" ] && kill "$target_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

tools=(eu_stack eu_stack_is dump dump_full dump_json)
[ "$have_gdb" -eq 1 ] && tools+=(gdb)
command_of() {  # gdb's command has arguments with spaces: run_tool spells it out
    case $1 in
    eu_stack) echo "eu-stack -p $pid" ;;
    eu_stack_is) echo "eu-stack -p $pid -i -s" ;;
    dump) echo "$stallwatch dump $pid --all-threads" ;;
    dump_full) echo "$stallwatch dump $pid --all-threads --full" ;;
    dump_json) echo "$stallwatch dump $pid --all-threads --format json" ;;
    esac
}
run_tool() {  # run_tool TOOL ROUND: appends the sampler's line to $dir/TOOL
    local t=$1 cmd
    case $t in
    gdb) cmd=(gdb -p "$pid" -batch -ex 'set pagination off' -ex 'thread apply all bt') ;;
    *) read -r -a cmd <<<"$(command_of "$t")" ;;
    esac
    "$sampler" --pid "$pid" --healthy "$healthy" --out "$dir/$t.out.$2" -- "${cmd[@]}" 2>>"$dir/$t.err" >>"$dir/$t"
}
field() { sed -n "s/.*\\b$2=\\([0-9.]*\\).*/\\1/p" "$dir/$1"; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
maximum() { sort -g | tail -1; }
total() { awk '{s += $1} END {print s + 0}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }
pass() { awk -v v="$1" -v g="$2" 'BEGIN {print (v >= g) ? "PASS" : "MISS"}'; }

# measure SETUP: one setup, its figures prefixed with SETUP_ (the goals' own
# names for the first setup, "service").
measure() {
    local setup=$1 prefix
    [ "$setup" = service ] && prefix="" || prefix="${setup}_"
    dir="$work/$setup"
    mkdir -p "$dir"
    mkfifo "$dir/in"
    if [ "$setup" = service ]; then
        setsid "$target" <"$dir/in" >"$dir/target" &
    else
        "$target" <"$dir/in" >"$dir/target" &
    fi
    target_pid=$!
    exec 3>"$dir/in"
    for _ in $(seq 400); do grep -q '^ready' "$dir/target" && break; sleep 0.025; done
    local ready
    ready=$(grep '^ready' "$dir/target") || { echo "compare-busy: the target did not start"; exit 1; }
    pid=$(sed -n 's/.*pid=\([0-9]*\).*/\1/p' <<<"$ready")
    healthy=$(sed -n 's/.*healthy=\([0-9,]*\).*/\1/p' <<<"$ready")
    echo "compare-busy: setup $setup: target pid $pid, 8 spinning threads and one blocked; $(nproc) CPUs; $rounds rounds"

    for t in "${tools[@]}"; do run_tool "$t" warm; : >"$dir/$t"; done  # page cache, lazy binding
    local r k n=${#tools[@]}
    for r in $(seq "$rounds"); do
        for k in $(seq 0 $((n - 1))); do run_tool "${tools[$(((k + r) % n))]}" "$r"; done
    done
    exec 3>&-
    wait "$target_pid" 2>/dev/null || true
    target_pid=""

    # The dumps must show the blocked thread's chain, in every round.
    for t in dump dump_full dump_json; do
        for r in $(seq "$rounds"); do
            grep -q 'block_here' "$dir/$t.out.$r" || { echo "compare-busy: $t round $r shows no block_here"; exit 1; }
        done
    done
    grep -q 'busy_target.c:' "$dir/dump_full.out.1" || { echo "compare-busy: dump --full shows no file:line"; exit 1; }

    for t in "${tools[@]}"; do
        printf '%s%s_wall_ms: %s\n' "$prefix" "$t" "$(field "$t" wall_ms | median)"
        printf '%s%s_wall_ms_runs: %s\n' "$prefix" "$t" "$(field "$t" wall_ms | tr '\n' ' ' | sed 's/ $//')"
        printf '%s%s_longest_stop_ms: %s\n' "$prefix" "$t" "$(field "$t" longest_stop_ms | maximum)"
        printf '%s%s_threads_stopped_max: %s\n' "$prefix" "$t" "$(field "$t" threads_stopped | maximum)"
        printf '%s%s_freeze_ms: %s\n' "$prefix" "$t" "$(field "$t" freeze_ms | maximum)"
        printf '%s%s_exit_codes: %s\n' "$prefix" "$t" "$(field "$t" rc | sort -u | tr '\n' ' ' | sed 's/ $//')"
    done
    for t in dump dump_full dump_json; do  # context: the phases of each dump's last round
        printf '%s%s_phases: %s\n' "$prefix" "$t" "$(grep 'phases:' "$dir/$t.err" | tail -1 | sed 's/^stallwatch: phases: //')"
    done
    local eu eu_is d full json dump_vs full_vs json_vs json_vs_is seen
    eu=$(field eu_stack wall_ms | median)
    eu_is=$(field eu_stack_is wall_ms | median)
    d=$(field dump wall_ms | median)
    full=$(field dump_full wall_ms | median)
    json=$(field dump_json wall_ms | median)
    dump_vs=$(ratio "$eu" "$d")
    full_vs=$(ratio "$eu_is" "$full")
    json_vs=$(ratio "$eu" "$json")
    json_vs_is=$(ratio "$eu_is" "$json")
    seen=$(cat "$dir/dump" "$dir/dump_full" "$dir/dump_json" | sed -n 's/.*seen_stopped=\([0-9]*\).*/\1/p' | total)
    echo "${prefix}dump_vs_eu_stack: $dump_vs"
    echo "${prefix}full_vs_eu_stack_is: $full_vs"
    echo "${prefix}json_vs_eu_stack: $json_vs"
    echo "${prefix}json_vs_eu_stack_is: $json_vs_is"
    echo "${prefix}dump_healthy_seen_stopped: $seen"
    verdicts+=("[$setup] goal dump --all-threads wall <= eu-stack -p wall (dump_vs_eu_stack $dump_vs >= 1.0): $(pass "$dump_vs" 1.0)")
    verdicts+=("[$setup] goal dump --all-threads --full >= 3x faster than eu-stack -p -i -s (full_vs_eu_stack_is $full_vs >= 3.0): $(pass "$full_vs" 3.0)")
    verdicts+=("[$setup] goal healthy threads never seen stopped by a dump (dump_healthy_seen_stopped $seen == 0, scans every 100 us): $([ "$seen" -eq 0 ] && echo PASS || echo MISS)")
    verdicts+=("[$setup] context (no goal): dump --format json (file:line on every frame) vs eu-stack -p: $json_vs, vs eu-stack -p -i -s: $json_vs_is")
}

verdicts=()
measure service
measure same_session
printf '%s\n' "${verdicts[@]}"
