#!/usr/bin/env bash
# Soak: stallwatch attach watches a target that stalls every second, for
# SOAK_SECONDS (default 600), and nothing may be lost or leak. Ends with
# these figures:
#   reports_expected     stalls the target completed while watched
#   reports_seen         of those, how many stallwatch reported (stall + recovered)
#   stall_events         stall events written in all (may include one in progress)
#   other_stall_events   stall events for workers that never stalled
#   rss_growth_kb        stallwatch's resident memory, end minus after warm-up
#   fd_growth            its open fds, end minus after warm-up
#   target_left_stopped  threads of the target stopped or traced after stallwatch ended
#   monitor_exit         stallwatch's exit status after SIGTERM (0 expected)
#
# With SOAK_CHECK=1 it also judges them and exits 1 on any breach (one line
# per breach): a monitor that did not exit 0, a report lost or invented, fd
# growth, a thread left stopped, or RSS growth above SOAK_MAX_RSS_GROWTH_KB
# (default 2048 kB). tests/run-all.sh runs it so for 60 s; the ten-minute
# default run is for by hand.
#
#   bench/soak.sh                    (after a build in build/)
#   SOAK_SECONDS=60 SOAK_CHECK=1 BUILD_DIR=... bench/soak.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
seconds=${SOAK_SECONDS:-600}
check=${SOAK_CHECK:-0}
max_rss_growth_kb=${SOAK_MAX_RSS_GROWTH_KB:-2048}
warmup=10
[ "$seconds" -gt "$warmup" ] || { echo "soak: SOAK_SECONDS must be more than the ${warmup}s warm-up"; exit 64; }
work=$(mktemp -d)
target_pid="" watcher_pid=""
cleanup() {
    [ -n "$watcher_pid" ] && kill "$watcher_pid" 2>/dev/null || true
    exec 3>&- 2>/dev/null || true
    [ -n "$target_pid" ] && kill "$target_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkfifo "$work/in"
"$build/bench/sw_bench_soak_target" <"$work/in" >"$work/target.out" &
target_pid=$!
exec 3>"$work/in"   # keeps the target's stdin open
for _ in $(seq 200); do grep -q '^ready' "$work/target.out" && break; sleep 0.05; done

"$build/src/stallwatch" attach "$target_pid" --format json --threshold 100ms \
    --output "$work/events.jsonl" 2>"$work/attach.err" &
watcher_pid=$!

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$watcher_pid/status"; }
fds() { ls "/proc/$watcher_pid/fd" | wc -l; }
sleep "$warmup"
rss0=$(rss) fd0=$(fds)
echo "soak: watching pid $target_pid for ${seconds}s (rss ${rss0} kB, ${fd0} fds after ${warmup}s)"
sleep $((seconds - warmup))
rss1=$(rss) fd1=$(fds)

# Stop right after a stall begins: every earlier stall has ended 700 ms ago,
# long enough for its 'recovered' event to be written.
last=$(grep -c '^begin' "$work/target.out" || true)
for _ in $(seq 400); do
    [ "$(grep -c '^begin' "$work/target.out" || true)" -gt "$last" ] && break
    sleep 0.005
done
completed=$(grep -c '^end' "$work/target.out" || true)
kill -TERM "$watcher_pid"
monitor_exit=0
wait "$watcher_pid" || monitor_exit=$?
watcher_pid=""

left=0
for t in /proc/"$target_pid"/task/*; do
    state=$(awk '/^State:/ {print $2}' "$t/status")
    tracer=$(awk '/^TracerPid:/ {print $2}' "$t/status")
    if [ "$state" = t ] || [ "$state" = T ] || [ "$tracer" != 0 ]; then left=$((left + 1)); fi
done
seen=$(grep '"event":"recovered"' "$work/events.jsonl" | grep -c '"thread.name":"victim"' || true)
stalls=$(grep '"event":"stall"' "$work/events.jsonl" | grep -c '"thread.name":"victim"' || true)
other=$(grep -c '"event":"stall"' "$work/events.jsonl" || true)
other=$((other - stalls))
if [ -s "$work/attach.err" ]; then sed 's/^/soak: stallwatch said: /' "$work/attach.err"; fi

echo "reports_expected: $completed"
echo "reports_seen: $seen"
echo "stall_events: $stalls"
echo "other_stall_events: $other"
echo "rss_growth_kb: $((rss1 - rss0))"
echo "fd_growth: $((fd1 - fd0))"
echo "target_left_stopped: $left"
echo "monitor_exit: $monitor_exit"

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
