#!/bin/sh
# Fails when an option that `stallwatch --help` or `stallwatch COMMAND --help`
# prints is missing from the man page. In the roff source a long option is
# written with escaped hyphens (\-\-max\-frames), a short one as \-n.
# Also fails when an example of a command's --help (the lines under
# "Examples:") is not a line of the page, so that the two never disagree.
#
#   check-options.sh STALLWATCH PAGE [COMMAND...]
set -u
usage="usage: check-options.sh STALLWATCH PAGE [COMMAND...]"
bin=${1:?$usage}
page=${2:?$usage}
shift 2

if [ ! -r "$page" ]; then
    echo "check-options: cannot read $page"
    exit 1
fi

help=""
for cmd in "" "$@"; do
    # shellcheck disable=SC2086 # $cmd is one word or none
    if ! text=$("$bin" $cmd --help 2>&1); then
        printf '%s\n' "$text"
        echo "check-options: '$bin $cmd --help' failed"
        exit 1
    fi
    help="$help
$text"
done

# The option lists: lines that start with the option's names, as CLI11
# prints them ("  -t,--threshold TEXT=100ms   How long ...", "  --full  ...").
# Options that a description merely mentions belong to another command's
# list and are checked when that command is.
names=$(printf '%s\n' "$help" | sed -n 's/^ \{1,\}\(-[A-Za-z0-9-]*\(,-[A-Za-z0-9-]*\)*\).*/\1/p' | tr ',' '\n')
long=$(printf '%s\n' "$names" | grep -E -- '^--[A-Za-z0-9][A-Za-z0-9-]*$' | sort -u)
short=$(printf '%s\n' "$names" | grep -E -- '^-[A-Za-z0-9]$' | sort -u)
if [ -z "$long" ]; then
    printf '%s\n' "$help"
    echo "check-options: found no long option in the help above"
    exit 1
fi

missing=0
checked=""
for opt in $long $short; do
    checked="$checked $opt"
    # --max-frames -> \\-\\-max\\-frames in the ERE: a literal \-\-max\-frames,
    # not followed by more of a name (a letter, a digit or another \-).
    pattern=$(printf '%s' "$opt" | sed 's/-/\\\\-/g')
    if ! grep -qE -- "${pattern}"'($|[^A-Za-z0-9\\]|\\[^-])' "$page"; then
        echo "check-options: $opt is in --help but not in $page (write it as $(printf '%s' "$opt" | sed 's/-/\\-/g'))"
        missing=$((missing + 1))
    fi
done
if [ "$missing" -ne 0 ]; then
    echo "check-options: $missing option(s) undocumented"
    exit 1
fi
echo "check-options: every option of --help is in $page:$checked"

# The examples: each a line of the page, once its \- are read as -.
plain=$(sed -e 's/\\-/-/g' "$page")
examples=$(printf '%s\n' "$help" | awk '/^Examples:$/ { on = 1; next }
    on && /^  stallwatch / { sub(/^  /, ""); print; next }
    { on = 0 }')
if [ -z "$examples" ]; then
    echo "check-options: found no example in the help"
    exit 1
fi
missing=0
count=0
while IFS= read -r ex; do
    count=$((count + 1))
    if ! printf '%s\n' "$plain" | grep -qxF -- "$ex"; then
        echo "check-options: the example '$ex' of --help is not a line of $page"
        missing=$((missing + 1))
    fi
done <<EOF2
$examples
EOF2
if [ "$missing" -ne 0 ]; then
    echo "check-options: $missing example(s) of --help not in $page"
    exit 1
fi
echo "check-options: the $count examples of --help are in $page"
