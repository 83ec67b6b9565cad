#!/usr/bin/env bash
# Runs distorch's ComfyUI nodes in a real ComfyUI checkout (never committed,
# never fetched by this script):
#
#   COMFYUI_DIR=/path/to/ComfyUI [PYTHON=/usr/bin/python3] [CLIP=auto|clip_l|gemma2] \
#     tests/comfyui/run_real.sh                       the `keep` flow on the host's Python
#   COMFYUI_DIR=/tmp/ComfyUI [GGUF_DIR=/tmp/ComfyUI-GGUF] [FLOWS="clip_l lora ..."] \
#     RUNTIME=sid tests/comfyui/run_real.sh           every flow in scripts/torch2-env.sh's
#                                                     Debian sid chroot (torch 2.x, transformers,
#                                                     gguf); COMFYUI_DIR/GGUF_DIR under /tmp
#
# Starts distorchd (sim:0, sim:1 and cpu) and ComfyUI on a loopback port with its own
# base directory ($WORK/base: custom_nodes, models, output, user; the checkout is not
# written to), links the node, the test-only probe node and ComfyUI-GGUF (GGUF_DIR)
# into it, writes the models the flows need (tests/comfyui/real/make_real_models.py),
# and runs the flows (tests/comfyui/real/drive.py; docs/testing.md lists them). Each
# flow prints `FLOW <name>: PASS|FAIL <why>` and a failed flow does not stop the next.
# Exit status 0: every flow passed.
#
# Packages ComfyUI imports but the Python lacks get import stubs named in $STUBS
# (tests/comfyui/real/sitecustomize.py): each one used is printed, and a stub raises if
# a flow calls into it. In the sid chroot only what Debian does not package is stubbed.
set -euo pipefail
if [[ -z "${COMFYUI_DIR:-}" ]]; then echo "run_real.sh: SKIPPED (set COMFYUI_DIR)"; exit 0; fi
REPO=$(cd "$(dirname "$0")/../.." && pwd)
RUNTIME=${RUNTIME:-host}
if [[ "$RUNTIME" == sid && -z "${DISTORCH_IN_CHROOT:-}" ]]; then
  for d in "$COMFYUI_DIR" ${GGUF_DIR:+"$GGUF_DIR"}; do
    case "$(realpath "$d")" in /tmp/*|"$REPO"/*) ;; *)
      echo "run_real.sh: $d must be under /tmp (the chroot sees the host's /tmp)"; exit 2 ;; esac
  done
  cd "$REPO"  # torch2-env.sh binds the repository of the current directory
  export COMFYUI_DIR=$(realpath "$COMFYUI_DIR") ${GGUF_DIR:+GGUF_DIR=$(realpath "$GGUF_DIR")}
  exec "$REPO/scripts/torch2-env.sh" --release sid run env DISTORCH_IN_CHROOT=1 bash "$REPO/tests/comfyui/run_real.sh"
fi
case "$RUNTIME" in
  host) DEFAULT_STUBS=safetensors,einops,transformers,tokenizers,torchsde,kornia,spandrel,comfyui_frontend_package,pydantic_settings
        DEFAULT_FLOWS=keep ;;
  sid)  DEFAULT_STUBS=torchsde,kornia,spandrel,comfyui_frontend_package,comfy_aimdo,comfy_angle,comfy_kitchen
        DEFAULT_FLOWS="clip_l free_kept reuse kept_unused gemma2 triple checkpoint checkpoint_save lora save save_lora gguf gguf_q8 free_all
                       mgpu_names mgpu_unet_vram mgpu_expert_bytes mgpu_expert_logged mgpu_clip_device mgpu_triple
                       mgpu_checkpoint mgpu_ckpt_advanced mgpu_vae mgpu_gguf mgpu_eject autostart no_drop" ;;
  *) echo "run_real.sh: RUNTIME must be host or sid"; exit 2 ;;
esac
PYTHON=${PYTHON:-$(command -v python3)}
BUILD=${BUILD:-$REPO/build}
DISTORCHD=${DISTORCHD:-$BUILD/daemon/distorchd}
DISTORCHCTL=${DISTORCHCTL:-$BUILD/daemon/ctl/distorchctl}
# Inside the chroot the host-built binaries run through the host's loader (torch2-env.sh).
HOST_EXEC=
if [[ -n "${DISTORCH_IN_CHROOT:-}" ]] && command -v host-exec >/dev/null; then HOST_EXEC=host-exec; fi
PORT=${PORT:-8199}
STUBS=${STUBS:-$DEFAULT_STUBS}
FLOWS=${FLOWS:-$DEFAULT_FLOWS}
WORK=$(mktemp -d /tmp/distorch-real.XXXXXX)
BASE="$WORK/base"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  # what drive.py started (other ComfyUIs, an auto-started daemon), if still there
  if [[ -f "$WORK/extra.pids" ]]; then
    while read -r p; do
      if [[ -r "/proc/$p/cmdline" ]] && tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline" | grep -qF "$WORK"; then kill "$p" 2>/dev/null || true; fi
    done < "$WORK/extra.pids"
  fi
  rm -rf "$BASE/models" "$BASE/output"  # up to 12 GB (sparse) of model files
  echo "run_real.sh: logs in $WORK"
}
trap cleanup EXIT

mkdir -p "$BASE/custom_nodes" "$BASE/models" "$WORK/probe" "$WORK/fe"
echo '<html></html>' > "$WORK/fe/index.html"
ln -sfn "$REPO/client_py/distorch/comfy/comfyui_node" "$BASE/custom_nodes/distorch"
ln -sfn "$REPO/tests/comfyui/real/probe_node" "$BASE/custom_nodes/distorch_probe"
# ComfyUI loads custom nodes in name order: ComfyUI-GGUF before distorch, as it must be.
[[ -n "${GGUF_DIR:-}" ]] && ln -sfn "$GGUF_DIR" "$BASE/custom_nodes/ComfyUI-GGUF"
# Bytecode goes to a cache of its own: nothing is written into the checkouts.
export PYTHONPYCACHEPREFIX=${PYTHONPYCACHEPREFIX:-/tmp/distorch-pycache}
export PYTHONPATH="$REPO/tests/comfyui/real:$REPO/client_py:$REPO/tests/tools"
export DISTORCH_IMPORT_STUBS="$STUBS" DISTORCH_SOCKET="$WORK/d.sock" DISTORCH_PROBE_OUT="$WORK/probe"
export DISTORCH_REAL_FLOWS="$FLOWS" DISTORCH_REAL_MODELS="$BASE/models" DISTORCH_REAL_OUTPUT="$BASE/output"
export DISTORCH_REAL_WORK="$WORK"
# The ComfyUI side's settings come from the environment alone (no ~/.config/distorch file).
export DISTORCH_CONFIG="$WORK/no-comfyui-settings.toml"

CLIP=${CLIP:-auto}
if [[ "$CLIP" == auto ]]; then
  if DISTORCH_IMPORT_STUBS= "$PYTHON" -c 'import transformers' 2>/dev/null; then CLIP=clip_l; else CLIP=gemma2; fi
fi
case "$CLIP" in
  clip_l) export DISTORCH_REAL_CLIP_FILE=clip_l.safetensors DISTORCH_REAL_CLIP_TYPE=stable_diffusion \
            DISTORCH_REAL_CLIP_ALLOC="" ;;
  gemma2) export DISTORCH_REAL_CLIP_FILE=gemma2_2b.safetensors DISTORCH_REAL_CLIP_TYPE=lumina2 \
            DISTORCH_REAL_CLIP_ALLOC="sim:1,2gb;cpu,*" ;;
  *) echo "run_real.sh: CLIP must be clip_l, gemma2 or auto"; exit 2 ;;
esac
items=()
for flow in $FLOWS; do
  case "$flow" in
    keep) items+=(unet "$CLIP") ;;
    clip_l|reuse|kept_unused|save|free_all) items+=(unet clip_l) ;;
    gemma2) items+=(gemma2) ;;
    triple) items+=(clip_l clip_g t5xxl) ;;
    checkpoint|checkpoint_save) items+=(checkpoint) ;;
    lora|save_lora) items+=(unet clip_l lora) ;;
    gguf|gguf_q8|mgpu_gguf) items+=(gguf) ;;
    mgpu_unet_vram|mgpu_expert_bytes|autostart|no_drop) items+=(unet) ;;
    mgpu_expert_logged|mgpu_eject) items+=(unet clip_l) ;;
    mgpu_clip_device) items+=(clip_l clip_g) ;;
    mgpu_triple) items+=(clip_l clip_g t5xxl) ;;
    mgpu_checkpoint|mgpu_ckpt_advanced) items+=(checkpoint) ;;
    mgpu_vae) items+=(vae) ;;
  esac
done
echo "== models ($(printf '%s\n' "${items[@]}" | sort -u | tr '\n' ' '))"
(cd "$COMFYUI_DIR" && "$PYTHON" "$REPO/tests/comfyui/real/make_real_models.py" "$BASE/models" \
  $(printf '%s\n' "${items[@]}" | sort -u))

echo "== distorchd"
printf 'grace_period_s = 1\n' > "$WORK/distorchd.toml"
$HOST_EXEC "$DISTORCHD" --config "$WORK/distorchd.toml" --socket "$WORK/d.sock" \
  --devices sim:0=4GiB,sim:1=4GiB > "$WORK/distorchd.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do [[ -S "$WORK/d.sock" ]] && break; sleep 0.1; done

echo "== ComfyUI $(cd "$COMFYUI_DIR" && "$PYTHON" -c 'import comfyui_version as v; print(v.__version__)' 2>/dev/null || echo '?') on 127.0.0.1:$PORT ($("$PYTHON" -c 'import torch; print("torch", torch.__version__)'))"
DEVICE_FLAG=--cpu
if "$PYTHON" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then DEVICE_FLAG=; fi
if grep -q -- '--base-directory' "$COMFYUI_DIR/comfy/cli_args.py"; then
  DIR_FLAGS=(--base-directory "$BASE")
else  # an older ComfyUI: link into the checkout (removed again by cleanup)
  for n in "$BASE"/custom_nodes/*; do ln -sfn "$(readlink "$n")" "$COMFYUI_DIR/custom_nodes/$(basename "$n")"; done
  trap 'for n in "$BASE"/custom_nodes/*; do rm -f "$COMFYUI_DIR/custom_nodes/$(basename "$n")"; done; cleanup' EXIT
  printf 'distorch:\n  base_path: %s\n  checkpoints: checkpoints\n  diffusion_models: diffusion_models\n  text_encoders: text_encoders\n  loras: loras\n' \
    "$BASE/models" > "$WORK/extra_paths.yaml"
  DIR_FLAGS=(--extra-model-paths-config "$WORK/extra_paths.yaml" --output-directory "$BASE/output")
fi
(cd "$COMFYUI_DIR" && exec "$PYTHON" main.py $DEVICE_FLAG --listen 127.0.0.1 --port "$PORT" \
  --front-end-root "$WORK/fe" "${DIR_FLAGS[@]}" > "$WORK/comfyui.log" 2>&1) & pids+=($!)
# How drive.py starts further ComfyUIs (the autostart and no_drop flows, on PORT+1, PORT+2)
# and which distorchd one may start (inside the chroot: the host-exec wrapper).
DAEMON_BIN=$DISTORCHD
[[ -n "$HOST_EXEC" ]] && DAEMON_BIN=$BUILD/torch2-bin/distorchd
export DISTORCH_REAL_COMFYUI_DIR="$COMFYUI_DIR" DISTORCH_REAL_PYTHON="$PYTHON" DISTORCH_REAL_DAEMON_BIN="$DAEMON_BIN"
if [[ "${DIR_FLAGS[0]}" == --base-directory ]]; then
  export DISTORCH_REAL_COMFY_FLAGS="$DEVICE_FLAG --front-end-root $(printf '%q' "$WORK/fe") --base-directory $(printf '%q' "$BASE")"
fi
for _ in $(seq 480); do curl -sf "http://127.0.0.1:$PORT/system_stats" >/dev/null && break; sleep 0.5; done
grep -h "STUBBED" "$WORK/comfyui.log" || true
grep -h "distorch\|IMPORT FAILED\|gguf" "$WORK/comfyui.log" | head -20

"$PYTHON" "$REPO/tests/comfyui/real/drive.py" "$PORT" "$HOST_EXEC $DISTORCHCTL" "$WORK/d.sock" "$WORK/comfyui.log"
