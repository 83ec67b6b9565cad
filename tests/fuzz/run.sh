#!/usr/bin/env bash
# Long fuzz runs: builds every tests/fuzz/*_fuzz.cc as a libFuzzer binary
# (clang, ASan + UBSan) and runs each for $FUZZ_SECONDS on its seed corpus.
#
#   tests/fuzz/run.sh                 # every target, 60 s each
#   FUZZ_SECONDS=600 tests/fuzz/run.sh alloc_spec_fuzz
#
# New inputs libFuzzer finds go to build-fuzz/corpus/<target>/, never into the
# checked-in seeds; copy the interesting ones to tests/fuzz/corpus/<target>/ by
# hand. Crashes are written to build-fuzz/artifacts/<target>/. The default
# (gcc) build only replays the seeds, as the fuzz/*_replay CTest tests.
set -euo pipefail

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
cd "$ROOT"

targets=()
if (($#)); then
  targets=("$@")
else
  for src in tests/fuzz/*_fuzz.cc; do targets+=("$(basename "$src" .cc)"); done
fi
if ((${#targets[@]} == 0)); then
  echo "run.sh: no tests/fuzz/*_fuzz.cc targets" >&2
  exit 1
fi

# The library under test needs coverage instrumentation too (fuzzer-no-link),
# or libFuzzer would only see the few branches in the target file itself.
SANITIZE="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer"
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja \
  -DDISTORCH_FUZZ=ON -DDISTORCH_BUILD_TESTS=ON -DDISTORCH_WITH_TORCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="$SANITIZE" -DCMAKE_CXX_FLAGS="$SANITIZE"
cmake --build "$BUILD" --target "${targets[@]}"

failed=()
for target in "${targets[@]}"; do
  seeds="tests/fuzz/corpus/$target"
  work="$BUILD/corpus/$target"
  artifacts="$BUILD/artifacts/$target/"
  mkdir -p "$work" "$artifacts"
  args=(-max_total_time="$FUZZ_SECONDS" -print_final_stats=1
        -artifact_prefix="$artifacts")
  [[ -f "tests/fuzz/$target.dict" ]] && args+=(-dict="tests/fuzz/$target.dict")
  echo "=== $target: ${FUZZ_SECONDS}s, seeds from $seeds"
  # The first corpus directory receives new inputs; the seeds stay read-only.
  corpora=("$work")
  [[ -d "$seeds" ]] && corpora+=("$seeds")
  if ! "$BUILD/tests/fuzz/$target" "${args[@]}" "${corpora[@]}"; then
    failed+=("$target")
  fi
done

if ((${#failed[@]})); then
  echo "run.sh: FAILED: ${failed[*]} (inputs in $BUILD/artifacts/)" >&2
  exit 1
fi
echo "run.sh: all ${#targets[@]} target(s) ran ${FUZZ_SECONDS}s without a finding"
