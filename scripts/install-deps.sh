#!/usr/bin/env bash
# Installs the Debian 12 packages distorch builds and tests with. Idempotent: only
# missing packages are installed, so a second run costs a few dpkg queries.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev catch2 libtomlplusplus-dev
  libtorch-dev
  python3 python3-grpcio python3-protobuf python3-torch python3-pytest python3-numpy
  flake8        # the Python linter (.flake8, ctest -L lint)
  clang
  clang-format  # ctest lint/clang-format (scripts/check-format.sh)
  debootstrap   # the torch-2 chroot of scripts/torch2-env.sh (Python tests on torch 2.x)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
