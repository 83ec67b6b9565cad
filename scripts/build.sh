#!/usr/bin/env bash
# Configures and builds distorch (Release) into ${DISTORCH_BUILD_DIR:-build}.
#   scripts/build.sh                       every target (test.sh)
#   scripts/build.sh distorchd distorchctl  only those targets (start.sh: a first start
#                                           does not wait for the tests and benchmarks)
# Safe to run again (incremental).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${DISTORCH_BUILD_DIR:-build}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
cmake_args=(-S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release)
# The CUDA backend is compiled whenever the toolkit exists; GPUs are found at run time.
if [[ -x "$CUDA_HOME/bin/nvcc" || -f "$CUDA_HOME/include/cuda_runtime_api.h" ]]; then
  cmake_args+=(-DCUDAToolkit_ROOT="$CUDA_HOME")
else
  echo "build: no CUDA toolkit at $CUDA_HOME: building without the CUDA backend"
  cmake_args+=(-DDISTORCH_WITH_CUDA=OFF)
fi
cmake "${cmake_args[@]}" >/dev/null
# Two jobs fit 2 cores and ~1.5 GB per gRPC translation unit.
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j"${DISTORCH_JOBS:-$(nproc)}" "${targets[@]}"
