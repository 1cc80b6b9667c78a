#!/usr/bin/env bash
# Soak: stallwatch watches targets that stall every second, for SOAK_SECONDS
# (default 600), and nothing may be lost or leak. SOAK_MODE says how:
#   attach  (default) `stallwatch attach PID` on one bench/soak_target.c
#           whose worker "victim" stalls 300 ms of every second
#   agent   `stallwatch attach --all --comm 'sw_bench_soak_*'` (the host
#           agent) on SOAK_PROCESSES (4) such targets at once
#   redis   Debian's redis-server, unmodified, under libstallwatch-preload.so
#           and `stallwatch attach`; every second `redis-cli DEBUG SLEEP 0.3`
#           stalls its event loop for 300 ms
# Ends with these figures:
#   reports_expected     stalls the targets completed while watched
#   reports_seen         of those, how many stallwatch reported (stall + recovered)
#   stall_events         stall events written for them (may include one in progress)
#   other_stall_events   stall events for anything else (a worker that never
#                        stalled; under redis, a stack without debugCommand)
#   rss_growth_kb        stallwatch's resident memory, end minus after warm-up
#   fd_growth            its open fds, end minus after warm-up
#   target_left_stopped  threads of the targets stopped or traced after stallwatch ended
#   monitor_exit         stallwatch's exit status after SIGTERM (0 expected)
#   monitor_cpu_pct      stallwatch's CPU over the soak, % of one core (information)
#
# With SOAK_CHECK=1 it also judges them and exits 1 on any breach (one line
# per breach): a monitor that did not exit 0, a report lost or invented, fd
# growth, a thread left stopped, or RSS growth above SOAK_MAX_RSS_GROWTH_KB
# (default 2048 kB). tests/run-all.sh runs the attach mode so for 60 s; the
# ten-minute default run, and the other modes, are for by hand.
#
#   bench/soak.sh                    (after a build in build/)
#   SOAK_SECONDS=60 SOAK_CHECK=1 BUILD_DIR=... bench/soak.sh
#   SOAK_MODE=agent SOAK_PROCESSES=8 bench/soak.sh
#   SOAK_MODE=redis SOAK_SECONDS=120 SOAK_CHECK=1 bench/soak.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
seconds=${SOAK_SECONDS:-600}
check=${SOAK_CHECK:-0}
mode=${SOAK_MODE:-attach}
processes=${SOAK_PROCESSES:-4}
max_rss_growth_kb=${SOAK_MAX_RSS_GROWTH_KB:-2048}
warmup=10
[ "$seconds" -gt "$warmup" ] || { echo "soak: SOAK_SECONDS must be more than the ${warmup}s warm-up"; exit 64; }
case "$mode" in attach | agent | redis) ;; *) echo "soak: SOAK_MODE must be attach, agent or redis"; exit 64 ;; esac
work=$(mktemp -d)
target_pids=() watcher_pid="" sleeper_pid=""
cleanup() {
    [ -n "$sleeper_pid" ] && kill "$sleeper_pid" 2>/dev/null || true
    [ -n "$watcher_pid" ] && kill "$watcher_pid" 2>/dev/null || true
    exec 3>&- 2>/dev/null || true
    for p in "${target_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

start_soak_target() {  # N: writes $work/target-N.out
    "$build/bench/sw_bench_soak_target" <"$work/in" >"$work/target-$1.out" &
    target_pids+=($!)
}
watch_args=(--format json --threshold 100ms --output "$work/events.jsonl")
case "$mode" in
attach | agent)
    mkfifo "$work/in"
    n=1
    [ "$mode" = agent ] && n=$processes
    for i in $(seq "$n"); do start_soak_target "$i"; done
    exec 3>"$work/in"   # keeps the targets' stdin open
    for i in $(seq "$n"); do
        for _ in $(seq 200); do grep -q '^ready' "$work/target-$i.out" && break; sleep 0.05; done
    done
    if [ "$mode" = attach ]; then
        "$build/src/stallwatch" attach "${target_pids[0]}" "${watch_args[@]}" 2>"$work/attach.err" &
    else
        "$build/src/stallwatch" attach --all --comm 'sw_bench_soak_*' "${watch_args[@]}" 2>"$work/attach.err" &
    fi
    watcher_pid=$!
    ;;
redis)
    for f in /usr/bin/redis-server /usr/bin/redis-cli "$build/src/libstallwatch-preload.so"; do
        [ -e "$f" ] || { echo "soak: $f is missing (build first; packaging/install-deps.sh installs redis)"; exit 1; }
    done
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    env LD_PRELOAD="$build/src/libstallwatch-preload.so" /usr/bin/redis-server --port "$port" --bind 127.0.0.1 \
        --save '' --appendonly no --enable-debug-command local --dir "$work" --logfile "$work/redis.log" &
    target_pids+=($!)
    for _ in $(seq 200); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
    "$build/src/stallwatch" attach "${target_pids[0]}" "${watch_args[@]}" 2>"$work/attach.err" &
    watcher_pid=$!
    # The stalls: one DEBUG SLEEP 0.3 a second, each between a begin and an
    # end line, as the soak target prints them.
    (
        while :; do
            echo begin >>"$work/target-1.out"
            redis-cli -p "$port" DEBUG SLEEP 0.3 >/dev/null 2>&1 || exit 0
            echo end >>"$work/target-1.out"
            sleep 0.7
        done
    ) &
    sleeper_pid=$!
    ;;
esac
cpu_ns() { awk '{s += $1} END {print s}' /proc/"$watcher_pid"/task/*/schedstat; }
begins() { cat "$work"/target-*.out 2>/dev/null | grep -c '^begin' || true; }
ends() { cat "$work"/target-*.out 2>/dev/null | grep -c '^end' || true; }

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$watcher_pid/status"; }
fds() { ls "/proc/$watcher_pid/fd" | wc -l; }
sleep "$warmup"
rss0=$(rss) fd0=$(fds) c0=$(cpu_ns) t0=$(date +%s.%N)
echo "soak: $mode: watching pid(s) ${target_pids[*]} for ${seconds}s (rss ${rss0} kB, ${fd0} fds after ${warmup}s)"
sleep $((seconds - warmup))
rss1=$(rss) fd1=$(fds) c1=$(cpu_ns) t1=$(date +%s.%N)

# Stop right after a stall begins: every earlier stall has ended 700 ms ago,
# long enough for its 'recovered' event to be written.
last=$(begins)
for _ in $(seq 400); do
    [ "$(begins)" -gt "$last" ] && break
    sleep 0.005
done
completed=$(ends)
kill -TERM "$watcher_pid"
monitor_exit=0
wait "$watcher_pid" || monitor_exit=$?
watcher_pid=""
if [ -n "$sleeper_pid" ]; then kill "$sleeper_pid" 2>/dev/null || true; wait "$sleeper_pid" 2>/dev/null || true; sleeper_pid=""; fi

left=0
for p in "${target_pids[@]}"; do
    for t in /proc/"$p"/task/*; do
        state=$(awk '/^State:/ {print $2}' "$t/status")
        tracer=$(awk '/^TracerPid:/ {print $2}' "$t/status")
        if [ "$state" = t ] || [ "$state" = T ] || [ "$tracer" != 0 ]; then left=$((left + 1)); fi
    done
done
all_stalls=$(grep -c '"event":"stall"' "$work/events.jsonl" || true)
if [ "$mode" = redis ]; then
    seen=$(grep -c '"event":"recovered"' "$work/events.jsonl" || true)
    stalls=$(grep '"event":"stall"' "$work/events.jsonl" | grep -c 'debugCommand' || true)
else
    seen=$(grep '"event":"recovered"' "$work/events.jsonl" | grep -c '"thread.name":"victim"' || true)
    stalls=$(grep '"event":"stall"' "$work/events.jsonl" | grep -c '"thread.name":"victim"' || true)
fi
other=$((all_stalls - stalls))
if [ -s "$work/attach.err" ]; then sed 's/^/soak: stallwatch said: /' "$work/attach.err"; fi

echo "reports_expected: $completed"
echo "reports_seen: $seen"
echo "stall_events: $stalls"
echo "other_stall_events: $other"
echo "rss_growth_kb: $((rss1 - rss0))"
echo "fd_growth: $((fd1 - fd0))"
echo "target_left_stopped: $left"
echo "monitor_exit: $monitor_exit"
echo "monitor_cpu_pct: $(awk -v ns=$((c1 - c0)) -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.2f", 100 * ns / 1e9 / (t1 - t0)}')"

[ "$check" = 1 ] || exit 0
breaches=0
breach() { echo "soak: FAIL: $*"; breaches=$((breaches + 1)); }
[ "$monitor_exit" -eq 0 ] || breach "stallwatch exited with status $monitor_exit, not 0"
[ "$completed" -gt 0 ] || breach "the target completed no stall: nothing was measured"
[ "$seen" -eq "$completed" ] || breach "$completed stalls completed, $seen reported as recovered"
[ "$other" -eq 0 ] || breach "$other stall event(s) for workers that never stalled"
[ $((rss1 - rss0)) -le "$max_rss_growth_kb" ] || breach "RSS grew $((rss1 - rss0)) kB (bound ${max_rss_growth_kb} kB)"
[ $((fd1 - fd0)) -le 0 ] || breach "$((fd1 - fd0)) more open fds than after the warm-up"
[ "$left" -eq 0 ] || breach "$left thread(s) of the target left stopped or traced"
[ "$breaches" -eq 0 ] || exit 1
echo "soak: within bounds"
