#!/bin/sh
# Fails when groff reports anything about the man page: any warning (-ww
# turns all of them on), any error, or a non-zero exit. -z discards the
# formatted output, so whatever groff prints is a complaint.
#
#   check-render.sh GROFF PAGE
#
# Exits 77 (skipped) when GROFF is empty or was not found by CMake.
set -u
groff=${1:-}
page=${2:?usage: check-render.sh GROFF PAGE}

case $groff in
'' | *-NOTFOUND)
    echo "check-render: groff not found (Debian package groff-base): skipped"
    exit 77
    ;;
esac
if [ ! -r "$page" ]; then
    echo "check-render: cannot read $page"
    exit 1
fi

out=$("$groff" -man -ww -z "$page" 2>&1)
rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    printf '%s\n' "$out"
    echo "check-render: groff -man -ww -z $page: exit status $rc, output above (must be 0 and none)"
    exit 1
fi
echo "check-render: $page renders without warnings"
