#!/usr/bin/env bash
# ThreadSanitizer over the threaded Catch2 tests. By hand only, not in CI: read this first.
#
# Why not CI: TSan sees happens-before only through code it instrumented (or interceptors such
# as pthread_mutex_*). Debian 12's Abseil, gRPC and LibTorch are built without -fsanitize=thread,
# and absl::Mutex locks with its own atomics and futexes inside libabsl_synchronization.so, so
# TSan does not see those locks: every field an absl::Mutex guards looks racy, and the reports are
# mostly false. A trustworthy run needs Abseil (and, for the service, gRPC) rebuilt with TSan;
# that is a from-source build of each, longer than the whole CI budget.
#
# What it does: configures build-tsan/ (gcc, RelWithDebInfo, -DDISTORCH_SANITIZE=thread, no CUDA),
# builds the Catch2 test binaries, runs the tests that start threads and prints each TSan report
# (a summary line per report at the end). Suppressions (tests/sanitizers/tsan.supp) drop reports
# from inside the uninstrumented libraries; reports whose stacks are in our code stay, and one
# on a field an absl::Mutex guards is the false positive described above: check it by hand
# against the lock annotations (clang -Wthread-safety checks those at compile time).
# Exit status: 0 when no report is left, 1 otherwise (informational: see above).
#
# Usage: scripts/check-tsan.sh [catch2 test spec...]    default: the threaded tests below
# Env: DISTORCH_TSAN_BUILD_DIR (build-tsan), DISTORCH_JOBS,
#      DISTORCH_TSAN_TARGETS ("core_tests daemon_tests"; core_tests alone skips the daemon build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${DISTORCH_TSAN_BUILD_DIR:-build-tsan}
read -r -a targets <<< "${DISTORCH_TSAN_TARGETS:-core_tests daemon_tests}"

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDISTORCH_SANITIZE=thread -DDISTORCH_WITH_CUDA=OFF >/dev/null
cmake --build "$BUILD_DIR" -j"${DISTORCH_JOBS:-$(nproc)}" --target "${targets[@]}"

export TSAN_OPTIONS="suppressions=$ROOT/tests/sanitizers/tsan.supp:halt_on_error=0:second_deadlock_stack=1:history_size=4"
log=$(mktemp /tmp/distorch-tsan.XXXXXX)
status=0
run() {  # run BINARY SPEC...: one Catch2 binary, its output (and TSan's) into the log too
  local binary=$BUILD_DIR/$1
  shift
  [[ -x "$binary" ]] || return 0
  echo "== $binary $*" | tee -a "$log"
  # TSan exits 66 after a report; Catch2's own failures exit nonzero as well.
  "$binary" "$@" 2>&1 | tee -a "$log" || status=1
}
binary_of() { [[ $1 == core_tests ]] && echo tests/core_tests || echo "tests/daemon/$1"; }
for t in "${targets[@]}"; do
  if [[ $# -gt 0 ]]; then
    run "$(binary_of "$t")" "$@"
  elif [[ $t == core_tests ]]; then
    run tests/core_tests "[registry]"  # the registry under concurrent Acquire/AwaitReady
  else
    # the lane scheduler under threads, and loads that copy on several lanes
    run "$(binary_of "$t")" "[lane_scheduler],[broker],[loader]"
  fi
done
reports=$(grep -c "^WARNING: ThreadSanitizer" "$log" || true)
echo "== check-tsan: $reports ThreadSanitizer report(s); log: $log"
grep "^SUMMARY: ThreadSanitizer" "$log" | sort | uniq -c || true
[[ "$reports" == 0 && "$status" == 0 ]]
