#!/usr/bin/env bash
# Command 2: install what is missing, build, and run every test through CTest.
# GPU tests (label gpu) skip cleanly without a GPU; benchmarks run in quick mode.
# The Python tests run twice: on Debian 12's torch 1.13 and, label torch2, on torch 2.6 in a
# Debian 13 chroot that scripts/torch2-env.sh creates once per machine (outside the clone) while
# the C++ build runs. DISTORCH_TORCH2=0 leaves that chroot out (its tests then report skipped).
# Then the daemon's tests under sanitizers (scripts/check-sanitizers.sh; DISTORCH_SANITIZERS=0
# leaves them out). Long fuzz runs are separate: tests/fuzz/run.sh (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

torch2_pid=
torch2_log=$(mktemp /tmp/distorch-torch2-setup.XXXXXX)
if [[ "${DISTORCH_TORCH2:-1}" != 0 ]]; then
  ./scripts/torch2-env.sh setup > "$torch2_log" 2>&1 &
  torch2_pid=$!
fi

./scripts/build.sh
# clang -Wthread-safety over core, distorchd and distorchctl (build-tsa/); it fails on a finding.
# It runs beside the chroot's set-up. DISTORCH_THREAD_SAFETY=0 leaves it out.
if [[ "${DISTORCH_THREAD_SAFETY:-1}" != 0 ]]; then
  ./scripts/check-thread-safety.sh
fi

if [[ -n "$torch2_pid" ]]; then
  if ! wait "$torch2_pid"; then
    cat "$torch2_log" >&2
    echo "test: the torch-2 chroot could not be set up (log above); DISTORCH_TORCH2=0 skips it" >&2
    exit 1
  fi
  tail -n 1 "$torch2_log"
fi
rm -f "$torch2_log"

BUILD_DIR=${DISTORCH_BUILD_DIR:-build}
(cd "$BUILD_DIR" && ctest --output-on-failure --timeout 600 -j"${DISTORCH_TEST_JOBS:-2}" "$@")

# The Catch2 and daemon-starting integration tests again under ASan + UBSan (LeakSanitizer on),
# from a second build (build-asan/) of only what they need; docs/testing.md has what runs and
# what it costs. DISTORCH_SANITIZERS=0 leaves it out.
if [[ "${DISTORCH_SANITIZERS:-1}" != 0 ]]; then
  ./scripts/check-sanitizers.sh
fi
