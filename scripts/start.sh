#!/usr/bin/env bash
# Command 1: install what is missing, build (Release), and run distorchd in the
# foreground on a user-level socket with the devices it finds (host RAM always,
# CUDA GPUs when present). Extra arguments go to distorchd, e.g.
#   ./scripts/start.sh --devices sim:0=24GiB,sim:1=12GiB
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh distorchd distorchctl  # only what running the daemon needs
BUILD_DIR=${DISTORCH_BUILD_DIR:-build}
echo "start: distorchd in the foreground (Ctrl-C stops it); in another shell:"
echo "  $BUILD_DIR/daemon/ctl/distorchctl status"
exec "$BUILD_DIR/daemon/distorchd" "$@"
