#!/usr/bin/env bash
# Runs each libFuzzer harness of tether-fuzz for a while, from the committed corpus.
#   Tests/Fuzz/run-fuzzers.sh BINARY SECONDS TARGET...
# New inputs go to .build-fuzz/corpus/TARGET (merge them into Tests/Fuzz/Corpus with
# `make fuzz-merge`); a crash, a leak, a timeout or running out of memory stops the run with the
# input saved as .build-fuzz/artifacts/TARGET-*, and the script exits non-zero.
set -euo pipefail
binary=$1 seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export SWIFT_BACKTRACE=enable=no
export LSAN_OPTIONS="suppressions=$here/lsan-suppressions.txt${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
status=0
for target in "$@"; do
    # The tls harness keeps reachable memory from one input to the next (a task per handshake),
    # so libFuzzer would scan the whole heap for leaks after almost every input: 60 % of its time,
    # 17 inputs/s instead of 65 on the smoke build. LeakSanitizer still checks when the run ends,
    # and a leak then fails it.
    per_target=()
    [[ $target == tls ]] && per_target=(-detect_leaks=0)
    work="$root/.build-fuzz/corpus/$target"
    mkdir -p "$work" "$root/.build-fuzz/artifacts"
    log="$root/.build-fuzz/$target.log"
    if TETHER_FUZZ_TARGET=$target "$binary" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$root/.build-fuzz/artifacts/$target-" "${per_target[@]}" "$work" "$here/Corpus/$target" >"$log" 2>&1; then
        runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
        rate=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}')
        echo "fuzz $target: ${runs:-?} inputs in ${seconds}s (${rate:-?}/s), no failure"
    else
        status=1
        echo "fuzz $target: FAILED; see $log"
        grep -E 'ERROR|SUMMARY|Test unit written|Fatal error' "$log" | head -5
    fi
done
exit $status
