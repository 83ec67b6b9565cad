#!/usr/bin/env bash
# Several real ComfyUI instances sharing one text encoder through distorch, and the stock way,
# side by side (tests/bench/comfy_instances_bench.py; numbers in docs/performance.md):
#
#   COMFYUI_DIR=/tmp/ComfyUI tests/bench/comfy_instances_bench.sh [--instances 3] [--modes distorch,stock]
#
# Runs in scripts/torch2-env.sh's Debian sid chroot (torch 2.x and ComfyUI's requirements;
# set it up first with `scripts/torch2-env.sh --release sid setup`); COMFYUI_DIR must be under
# /tmp, which the chroot shares. Writes Lumina 2's Gemma 2 2B text encoder (4.87 GiB of zeros,
# a sparse file) with tests/comfyui/real/make_real_models.py, uses the host's build of distorchd
# (BUILD, default build/), prints JSON on stdout (progress on stderr) and removes every process
# and temporary file it made. Needs about 17 GiB of free memory for 3 stock instances (it does not
# start an instance that would leave less than --keep-free-gib available) and a few minutes.
set -euo pipefail
if [[ -z "${COMFYUI_DIR:-}" ]]; then echo "comfy_instances_bench.sh: set COMFYUI_DIR" >&2; exit 2; fi
REPO=$(cd "$(dirname "$0")/../.." && pwd)
if [[ -z "${DISTORCH_IN_CHROOT:-}" ]]; then
  case "$(realpath "$COMFYUI_DIR")" in /tmp/*) ;; *)
    echo "comfy_instances_bench.sh: COMFYUI_DIR must be under /tmp (the chroot sees the host's /tmp)" >&2; exit 2 ;; esac
  cd "$REPO"  # torch2-env.sh binds the repository of the current directory
  export COMFYUI_DIR=$(realpath "$COMFYUI_DIR")
  exec "$REPO/scripts/torch2-env.sh" --release sid run env DISTORCH_IN_CHROOT=1 \
    bash "$REPO/tests/bench/comfy_instances_bench.sh" "$@"
fi
BUILD=${BUILD:-$REPO/build}
WORK=$(mktemp -d /tmp/distorch-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT  # the Python side stops its processes itself (also on a signal)
export PYTHONPYCACHEPREFIX=${PYTHONPYCACHEPREFIX:-/tmp/distorch-pycache}
export PYTHONPATH="$REPO/tests/comfyui/real:$REPO/client_py:$REPO/tests/tools"
# Packages ComfyUI 0.33 imports that Debian does not package (tests/comfyui/real/sitecustomize.py).
export DISTORCH_IMPORT_STUBS=${STUBS:-torchsde,kornia,spandrel,comfyui_frontend_package,comfy_aimdo,comfy_angle,comfy_kitchen}
(cd "$COMFYUI_DIR" && python3 "$REPO/tests/comfyui/real/make_real_models.py" "$WORK/models" gemma2) >&2
python3 "$REPO/tests/bench/comfy_instances_bench.py" --comfyui "$COMFYUI_DIR" --repo "$REPO" \
  --work "$WORK" --model "$WORK/models/text_encoders/gemma2_2b.safetensors" \
  --distorchd "host-exec $BUILD/daemon/distorchd" "$@"
