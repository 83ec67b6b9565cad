#!/usr/bin/env bash
# Builds distorch on a lent GPU machine and runs what needs a GPU: the CUDA
# tests (ctest -L gpu), the GPU load benchmark and tests/bench/gpu_vs_torch.py.
# Logs, JUnit XML and benchmark JSON go to $OUT. docs/gpu.md explains it.
#
#   scripts/gpu-check.sh download   here (a Debian 12 dev machine), once: fetch
#                                   the C++ dependencies into .gpudeps/ (git-ignored)
#   scripts/gpu-check.sh [STEP...]  on the GPU machine, from the repo root, with
#                                   .gpudeps carried; STEP: build, test, bench,
#                                   all (the default: build test bench), rest
#                                   (every other CTest test, on a GPU host)
#
# Environment: OUT (default ./gpu-check-out), GPU_CHECK_FULL=1 (benchmarks'
# --full sizes), GPU_CHECK_TORCH=0 (do not link LibTorch), PYTHON (python3).
# The build lives in build-gpu/ (git-ignored, so it survives between device
# runs): `build` then `test bench` may be two calls.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-check-out}
BUILD=$ROOT/build-gpu
DEPS=/tmp/distorch-gpudeps
PYTHON=${PYTHON:-python3}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}

# GPU.md's list, plus what the build also finds through CMake and pkg-config
# (gRPC's link interface names OpenSSL, zlib, c-ares and re2 targets; the
# config reader is toml++ via pkg-config).
PACKAGES=(libgrpc++-dev libgrpc++1.51 libgrpc29 libgrpc-dev libprotobuf-dev libprotobuf32
  libprotoc-dev libprotoc32 protobuf-compiler protobuf-compiler-grpc libabsl-dev
  libabsl20220623 libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 catch2 libre2-9 libc-ares2
  libupb-dev libre2-dev libc-ares-dev libssl-dev zlib1g-dev libtomlplusplus-dev
  libtomlplusplus3 pkgconf pkgconf-bin libpkgconf3)

log() { echo "gpu-check: $*" | tee -a "$OUT/summary.txt"; }

download() {
  local exclude
  exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$exclude")" .gpudeps
  grep -qxF '/.gpudeps/' "$exclude" 2>/dev/null || echo '/.gpudeps/' >>"$exclude"
  (cd .gpudeps && apt-get download "${PACKAGES[@]}") && du -sh .gpudeps
}

# Unpacks .gpudeps under $DEPS (never over /) and points the tools at it.
use_deps() {
  if [[ ! -d .gpudeps ]]; then
    log "no .gpudeps/: using the C++ libraries installed on this machine"
    return
  fi
  if [[ ! -f $DEPS/.unpacked ]]; then
    mkdir -p "$DEPS"
    for f in .gpudeps/*.deb; do dpkg -x "$f" "$DEPS" || return 1; done
    # pkg-config files say prefix=/usr; make them say where they are now.
    find "$DEPS" -name '*.pc' -exec sed -i "s|^prefix=/usr\$|prefix=$DEPS/usr|" {} +
    touch "$DEPS/.unpacked"
  fi
  export LD_LIBRARY_PATH=$DEPS/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  export PATH=$DEPS/usr/bin:$PATH
  export PKG_CONFIG_PATH=$DEPS/usr/lib/x86_64-linux-gnu/pkgconfig:$DEPS/usr/share/pkgconfig
  PREFIX=$DEPS/usr
}

configure() {  # $1: ON/OFF for LibTorch
  local torch_prefix=""
  if [[ $1 == ON ]]; then
    torch_prefix=$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)') || return 1
  fi
  local args=(-S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_PREFIX_PATH="${PREFIX:-};$torch_prefix" -DCUDAToolkit_ROOT="$CUDA_HOME"
    -DDISTORCH_PYTHON="$(command -v "$PYTHON")" -DDISTORCH_WITH_TORCH="$1")
  [[ -x ${PREFIX:-/nonexistent}/bin/pkgconf ]] && args+=(-DPKG_CONFIG_EXECUTABLE="$PREFIX/bin/pkgconf")
  cmake "${args[@]}"
}

build() {
  local torch=ON
  [[ ${GPU_CHECK_TORCH:-1} == 0 ]] && torch=OFF
  if ! configure "$torch" >"$OUT/configure.log" 2>&1; then
    if [[ $torch == ON ]]; then
      log "configure with LibTorch failed (configure.log); retrying without it"
      mv "$OUT/configure.log" "$OUT/configure-torch.log"
      rm -rf "$BUILD/CMakeCache.txt"
      configure OFF >"$OUT/configure.log" 2>&1 || { log "FAIL configure (configure.log)"; return 1; }
    else
      log "FAIL configure (configure.log)"
      return 1
    fi
  fi
  local start=$SECONDS
  if cmake --build "$BUILD" -j"$(nproc)" >"$OUT/build.log" 2>&1; then
    log "ok   build ($((SECONDS - start)) s)"
  else
    log "FAIL build (build.log)"
    tail -30 "$OUT/build.log"
    return 1
  fi
}

run_tests() {
  (cd "$BUILD" && ctest -L gpu -LE bench --output-on-failure --timeout 300 \
     --output-junit "$OUT/ctest-gpu.xml") >"$OUT/ctest-gpu.log" 2>&1
  local rc=$?
  grep -E "tests passed|Skipped|Failed|\*\*\*" "$OUT/ctest-gpu.log" | tee -a "$OUT/summary.txt"
  if [[ $rc == 0 ]]; then log "ok   ctest -L gpu"; else log "FAIL ctest -L gpu (ctest-gpu.log)"; fi
  return $rc
}

# Everything not labelled gpu, to see the rest of the suite on a GPU host.
run_rest() {
  (cd "$BUILD" && ctest -LE gpu --output-on-failure --timeout 300 -j4 \
     --output-junit "$OUT/ctest-rest.xml") >"$OUT/ctest-rest.log" 2>&1
  local rc=$?
  grep -E "tests passed|\(Failed\)|\(Timeout\)" "$OUT/ctest-rest.log" | tee -a "$OUT/summary.txt"
  if [[ $rc == 0 ]]; then log "ok   ctest -LE gpu"; else log "FAIL ctest -LE gpu (ctest-rest.log)"; fi
  return $rc
}

# Runs one benchmark; its JSON lines go to $OUT/NAME.json, everything to NAME.log.
bench_one() {
  local name=$1; shift
  "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  grep '^{' "$OUT/$name.log" >"$OUT/$name.json"
  cat "$OUT/$name.json" >>"$OUT/summary.txt"
  case $rc in
    0) log "ok   $name" ;;
    77) log "SKIP $name: $(grep -m1 SKIPPED "$OUT/$name.log")"; rc=0 ;;
    *) log "FAIL $name (exit $rc, $name.log)" ;;
  esac
  return $rc
}

run_benches() {
  local full=()
  [[ ${GPU_CHECK_FULL:-0} == 1 ]] && full=(--full)
  local rc=0
  bench_one gpu_load_bench "$BUILD/tests/bench/gpu_load_bench" "${full[@]}" || rc=1
  bench_one gpu_vs_torch "$PYTHON" tests/bench/gpu_vs_torch.py \
    --distorchd "$BUILD/daemon/distorchd" "${full[@]}" || rc=1
  return $rc
}

main() {
  if [[ ${1:-} == download ]]; then
    download
    return
  fi
  mkdir -p "$OUT"
  local steps=("$@")
  [[ ${#steps[@]} == 0 || ${steps[0]} == all ]] && steps=(build test bench)
  {
    date -u
    git -C "$ROOT" log -1 --oneline 2>/dev/null
    if command -v nvidia-smi >/dev/null; then
      nvidia-smi --query-gpu=name,pci.bus_id,memory.total,driver_version --format=csv
    else
      echo "no nvidia-smi on PATH"
    fi
  } >>"$OUT/summary.txt"
  use_deps || { log "FAIL unpacking .gpudeps"; return 1; }
  local rc=0
  for step in "${steps[@]}"; do
    case $step in
      build) build || return 1 ;;
      test) run_tests || rc=1 ;;
      bench) run_benches || rc=1 ;;
      rest) run_rest || rc=1 ;;
      *) echo "gpu-check: unknown step '$step' (download, build, test, bench, rest, all)" >&2
         return 2 ;;
    esac
  done
  return $rc
}

main "$@"
