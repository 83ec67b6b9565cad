#!/usr/bin/env bash
# Command 2: install what is missing, build, and run every test through CTest.
# GPU tests (label gpu) skip cleanly without a GPU; benchmarks run in quick mode.
# Long fuzz runs are separate: tests/fuzz/run.sh (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
BUILD_DIR=${DISTORCH_BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 600 -j"${DISTORCH_TEST_JOBS:-2}" "$@"
