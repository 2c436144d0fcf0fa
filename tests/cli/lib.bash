# lib.bash - helpers shared by the CLI test scripts in this directory (sourced
# by each *.sh, not a test itself). Usage of a script: bash x.sh /path/to/factum.
# Each script gets its own scratch directory $T under $FACTUM_TEST_TMP, removed
# when the script exits.

FACTUM=${1:?usage: bash $0 /path/to/factum}
: "${FACTUM_TEST_TMP:=${TMPDIR:-/tmp}}"
mkdir -p "$FACTUM_TEST_TMP"
T=$(mktemp -d "$FACTUM_TEST_TMP/cli-$(basename "$0" .sh).XXXXXX")
trap 'rm -rf "$T"' EXIT
unset FACTUM_DATA FACTUM_SERVER
export COLUMNS=120 LC_ALL=C

fail() {
    local n=${#BASH_LINENO[@]}
    echo "FAIL ($(basename "$0") line ${BASH_LINENO[n - 2]}): $*" >&2
    exit 1
}

# run CODE CMD...: run CMD with stdout in $OUT and stderr in $ERR and check
# its exit status. A sanitizer report on stderr is always a failure.
run() {
    local want=$1 rc=0
    shift
    "$@" >"$T/.out" 2>"$T/.err" || rc=$?
    OUT=$(cat "$T/.out")
    ERR=$(cat "$T/.err")
    case "$ERR" in *Sanitizer*|*"runtime error"*) fail "sanitizer report from: $* :: $ERR" ;; esac
    [ "$rc" = "$want" ] || fail "exit $rc instead of $want from: $* :: stdout: $OUT :: stderr: $ERR"
}

# f CODE ARGS...: run factum ARGS (with --data $D) expecting exit CODE.
f() {
    local want=$1
    shift
    run "$want" "$FACTUM" --data "$D" "$@"
}

eq() { [ "$1" = "$2" ] || fail "${3:-value}: expected '$2', got '$1'"; }
contains() { case "$1" in *"$2"*) ;; *) fail "${3:-text}: '$1' does not contain '$2'" ;; esac; }
lacks() { case "$1" in *"$2"*) fail "${3:-text}: '$1' contains '$2'" ;; esac; }

# An error must be one line on stderr, "factum: <command>: <message>".
one_error_line() {
    local n
    n=$(printf '%s\n' "$ERR" | wc -l)
    eq "$n" 1 "lines on stderr ($ERR)"
    contains "$ERR" "factum: $1: " "error prefix"
}

# A fingerprint of a data directory: every file's name, size and
# modification time, and the contents of its first MiB (the log's segments
# are large and preallocated; what a write adds lands near their start).
snapshot() {
    if [ -e "$1" ]; then
        (
            cd "$1" || exit 1
            find . -printf '%p %s %T@\n' | sort
            find . -type f -size -1024k -exec md5sum {} + | sort
            find . -type f -size +1023k | sort | while read -r big; do head -c 1048576 "$big" | md5sum; done
        )
    else
        echo "absent"
    fi
}
