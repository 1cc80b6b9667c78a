#!/usr/bin/env bash
# Soak: stallwatch attach watches a target that stalls every second, for
# SOAK_SECONDS (default 600), and nothing may be lost or leak. Not part of
# CI's default path (it takes minutes). Ends with these figures:
#   reports_expected     stalls the target completed while watched
#   reports_seen         of those, how many stallwatch reported (stall + recovered)
#   stall_events         stall events written in all (may include one in progress)
#   rss_growth_kb        stallwatch's resident memory, end minus after warm-up
#   fd_growth            its open fds, end minus after warm-up
#   target_left_stopped  threads of the target stopped or traced after stallwatch ended
#
#   bench/soak.sh                    (after a build in build/)
#   SOAK_SECONDS=60 BUILD_DIR=... bench/soak.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
seconds=${SOAK_SECONDS:-600}
warmup=10
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
wait "$watcher_pid" || true
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
[ "$other" -eq 0 ] || echo "soak: $other stall event(s) for workers that never stalled"

echo "reports_expected: $completed"
echo "reports_seen: $seen"
echo "stall_events: $stalls"
echo "rss_growth_kb: $((rss1 - rss0))"
echo "fd_growth: $((fd1 - fd0))"
echo "target_left_stopped: $left"
