#!/usr/bin/env bash
# Fails when a C++ file differs from what clang-format (Debian 12's, .clang-format at the root)
# makes of it. `scripts/check-format.sh --fix` rewrites the files instead.
# Registered as the CTest test lint/clang-format, so .ci/run fails on drift.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format is not installed (apt-get install clang-format)" >&2; exit 2; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.cc' '*.h')
else
  mapfile -t files < <(find daemon include tests -name '*.cc' -o -name '*.h' | sort)
fi
if [[ "${1:-}" == --fix ]]; then
  clang-format -i "${files[@]}"
  echo "check-format: formatted ${#files[@]} files"
  exit 0
fi
if ! clang-format --dry-run --Werror "${files[@]}" 2> /tmp/check-format.$$; then
  grep -E "^[^ ].*: error:" /tmp/check-format.$$ | cut -d: -f1 | sort | uniq -c | sed 's/^/  /' >&2
  rm -f /tmp/check-format.$$
  echo "check-format: the files above differ from clang-format's output; run scripts/check-format.sh --fix" >&2
  exit 1
fi
rm -f /tmp/check-format.$$
echo "check-format: ${#files[@]} files match clang-format $(clang-format --version | grep -o '[0-9][0-9.]*' | head -1)"
