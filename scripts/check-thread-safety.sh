#!/usr/bin/env bash
# Checks the lock annotations: builds the core library, distorchd and distorchctl with clang
# and -Wthread-safety -Wthread-safety-beta as errors (-DDISTORCH_THREAD_SAFETY=ON) into
# ${DISTORCH_TSA_BUILD_DIR:-build-tsa}. Exit 0 means clang found no finding. Incremental; tests
# are not built (docs/testing.md says what it covers). ./scripts/test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${DISTORCH_TSA_BUILD_DIR:-build-tsa}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
for tool in clang clang++; do
  if ! command -v "$tool" >/dev/null; then
    echo "check-thread-safety: $tool is missing (apt-get install clang)" >&2
    exit 1
  fi
done
# -O0 without -g: the analysis runs in the front end; code generation is only for the link.
cmake_args=(-S . -B "$BUILD_DIR" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
            -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG=-O0 -DCMAKE_CXX_FLAGS_DEBUG=-O0
            -DDISTORCH_BUILD_TESTS=OFF -DDISTORCH_THREAD_SAFETY=ON)
# The CUDA backend's sources (devices/cuda/) are checked too when the toolkit is there.
if [[ -x "$CUDA_HOME/bin/nvcc" || -f "$CUDA_HOME/include/cuda_runtime_api.h" ]]; then
  cmake_args+=(-DCUDAToolkit_ROOT="$CUDA_HOME")
else
  cmake_args+=(-DDISTORCH_WITH_CUDA=OFF)
fi
cmake "${cmake_args[@]}" >/dev/null
start=$SECONDS
if ! cmake --build "$BUILD_DIR" -j"${DISTORCH_JOBS:-$(nproc)}" --target distorchd distorchctl; then
  echo "check-thread-safety: clang -Wthread-safety failed (above); docs/testing.md says how to fix" >&2
  exit 1
fi
echo "check-thread-safety: clean ($((SECONDS - start)) s)"
