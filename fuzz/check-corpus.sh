#!/bin/sh
# The generated seeds under fuzz/corpus/ are exactly what sw_fuzz_make_corpus
# writes now. Files it does not write (regress-*: inputs the fuzzers found)
# are not compared.
#
#   check-corpus.sh <sw_fuzz_make_corpus> <fuzz/corpus> <scratch dir>
set -eu
make_corpus=$1 corpus=$2 work=$3

rm -rf "$work"
"$make_corpus" "$work"
stale=0
for f in "$work"/*/*; do
    rel=${f#"$work"/}
    if ! cmp -s "$f" "$corpus/$rel"; then
        echo "check-corpus: fuzz/corpus/$rel differs from what sw_fuzz_make_corpus writes"
        stale=1
    fi
done
if [ "$stale" -ne 0 ]; then
    echo "check-corpus: regenerate with: $make_corpus $corpus (and check the result in)"
    exit 1
fi
echo "check-corpus: $(find "$work" -type f | wc -l) generated seeds match fuzz/corpus/"
