#!/usr/bin/env bash
# The bash completion offers commands, options per command, format names,
# and pids. usage: completion-test.sh packaging/bash-completion/stallwatch
set -uo pipefail
# shellcheck source=/dev/null
source "$1"
failures=0
complete_line() {  # words... -> COMPREPLY for the last word
    COMP_WORDS=("$@")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    _stallwatch
}
expect() {  # expected-word words...
    local want=$1; shift
    complete_line "$@"
    if ! printf '%s\n' "${COMPREPLY[@]}" | grep -qx -- "$want"; then
        echo "FAIL: '$*' does not offer '$want' (got: ${COMPREPLY[*]})"
        failures=$((failures + 1))
    fi
}
expect_not() {
    local unwanted=$1; shift
    complete_line "$@"
    if printf '%s\n' "${COMPREPLY[@]}" | grep -qx -- "$unwanted"; then
        echo "FAIL: '$*' offers '$unwanted'"
        failures=$((failures + 1))
    fi
}
expect attach stallwatch at
expect dump stallwatch d
expect --version stallwatch --v
expect --threshold stallwatch attach 1 --thr
expect --once stallwatch attach 1 --on
expect --all-threads stallwatch dump 1 --all
expect folded stallwatch dump 1 --format ""
expect json stallwatch list --format ""
expect --no-holder-stacks stallwatch attach 1 --no-h
expect always stallwatch dump 1 --color ""
expect_not folded stallwatch list --format ""
expect "$$" stallwatch attach "$$"
expect -- stallwatch run --
expect --interval stallwatch run --int
expect --max-event-bytes stallwatch attach 1 --max-e
expect --max-event-bytes stallwatch dump 1 --max-e
expect --max-event-bytes stallwatch run --max-e
expect_not --max-event-bytes stallwatch list --max
expect 16384 stallwatch attach 1 --max-event-bytes ""
expect --all stallwatch attach --al
expect --cgroup stallwatch attach --all --cg
expect root stallwatch attach --all --user ro
expect_not --all stallwatch dump --al
expect top stallwatch to
expect --interval stallwatch top 1 --int
expect 500ms stallwatch top 1 --interval ""
expect_not 5ms stallwatch top 1 --interval ""
expect "$$" stallwatch top "$$"
expect --live stallwatch attach 1 --li
expect 500ms stallwatch attach 1 --live --interval ""
expect --threshold stallwatch status 1 --thr
expect json stallwatch status 1 --format ""
expect_not folded stallwatch status 1 --format ""
echo "completion: $failures failure(s)"
[ "$failures" -eq 0 ]
