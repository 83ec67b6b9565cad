#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer on) over the daemon.
#
# Configures build-asan/ (gcc, RelWithDebInfo at -O1 -g1, -DDISTORCH_SANITIZE=address,undefined:
# -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined),
# builds only what the tests need (distorchd, distorchctl, the daemon's Catch2 tests, the
# Python stubs) and runs through CTest:
#   - the Catch2 tests of the daemon (daemon/*), in process (the core's parsers have their own
#     ASan run in tests/fuzz/run.sh; core_tests is left out to keep the CI build short);
#   - the Python tests that start a real distorchd (label integration: integration/*,
#     comfyui/*_integration, daemon/weight_dtype_py), Debian's python3 driving the
#     instrumented distorchd and distorchctl.
# Not run: torch2 (the same Python tests on another Python), bench, gpu, fuzz (tests/fuzz/run.sh
# has its own ASan build), lint. Without a CUDA backend: CUDA's runtime and ASan's shadow
# memory do not mix, and this runs on machines without a GPU.
#
# Only the daemon and CLI binaries are instrumented; Python is not. gcc links libasan into
# the executables, so no LD_PRELOAD is needed. The harnesses (tests/tools/distorch_test_daemon.py,
# tests/comfyui/daemon_fixture.py) stop the daemon with SIGTERM and fail the test on a nonzero
# exit: a leak or UB report makes one, and the report is in the daemon log they print.
# Suppressions for reports that are not ours: tests/sanitizers/lsan.supp (one reason each).
#
# Usage: scripts/check-sanitizers.sh [ctest args...]    e.g. -R integration/sharing
# Env: DISTORCH_ASAN_BUILD_DIR (build-asan), DISTORCH_JOBS, DISTORCH_TEST_JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${DISTORCH_ASAN_BUILD_DIR:-build-asan}

# -O1 -g1: what ASan recommends for speed with readable stacks (file:line), and it compiles the
# gRPC/protobuf-heavy sources about a third faster than -O2 -g.
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DDISTORCH_SANITIZE=address,undefined -DDISTORCH_WITH_CUDA=OFF >/dev/null
cmake --build "$BUILD_DIR" -j"${DISTORCH_JOBS:-$(nproc)}" \
  --target distorchd distorchctl daemon_tests distorch_python_stubs

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$ROOT/tests/sanitizers/lsan.supp:print_suppressions=0

cd "$BUILD_DIR"
ctest --output-on-failure --timeout 600 -j"${DISTORCH_TEST_JOBS:-2}" \
  -L 'unit|integration' -LE 'torch2|bench|gpu' "$@"
