#!/usr/bin/env bash
# Runs distorch's ComfyUI nodes in a real ComfyUI checkout (never committed,
# never fetched by this script):
#   COMFYUI_DIR=/path/to/ComfyUI [PYTHON=/usr/bin/python3] tests/comfyui/run_real.sh
# Installs the node (symlink), starts distorchd (sim: devices) and ComfyUI on a
# loopback port, queues a prompt that loads a UNet (keep_loaded=true) and a CLIP
# (keep_loaded=false) through distorch nodes, posts /free, checks with
# `distorchctl --json models` that exactly the CLIP was ejected and the UNet is
# still resident, then queues a second prompt that must reuse the kept UNet.
# Packages ComfyUI imports but Debian lacks are replaced by import stubs named
# in $STUBS (tests/comfyui/real/sitecustomize.py); each one used is printed, and
# a stub raises if the tested flow calls into it.
# The text encoder ($CLIP): clip_l (CLIP-L, 246 MB, tokenized by transformers)
# when PYTHON has transformers, else gemma2 (Lumina 2's Gemma 2 2B, 5.2 GB:
# ComfyUI fixes its size; tokenized by sentencepiece alone, which Debian
# packages), placed over sim:1 and cpu.
set -euo pipefail
if [[ -z "${COMFYUI_DIR:-}" ]]; then echo "run_real.sh: SKIPPED (set COMFYUI_DIR)"; exit 0; fi
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
BUILD=${BUILD:-$REPO/build}
DISTORCHD=${DISTORCHD:-$BUILD/daemon/distorchd}
DISTORCHCTL=${DISTORCHCTL:-$BUILD/daemon/ctl/distorchctl}
PORT=${PORT:-8199}
STUBS=${STUBS:-safetensors,einops,transformers,tokenizers,torchsde,kornia,spandrel,comfyui_frontend_package,pydantic_settings}
WORK=$(mktemp -d /tmp/distorch-real.XXXXXX)
NODE_LINK="$COMFYUI_DIR/custom_nodes/distorch"
PROBE_LINK="$COMFYUI_DIR/custom_nodes/distorch_probe"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -f "$NODE_LINK" "$PROBE_LINK"
  rm -rf "$WORK/models"  # up to 5 GB of zeros
  echo "run_real.sh: logs in $WORK"
}
trap cleanup EXIT

ln -sfn "$REPO/client_py/distorch/comfy/comfyui_node" "$NODE_LINK"
ln -sfn "$REPO/tests/comfyui/real/probe_node" "$PROBE_LINK"
mkdir -p "$WORK/fe" && echo '<html></html>' > "$WORK/fe/index.html"
export PYTHONPATH="$REPO/tests/comfyui/real:$REPO/client_py:$REPO/tests/tools"
export DISTORCH_IMPORT_STUBS="$STUBS" DISTORCH_SOCKET="$WORK/d.sock"

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
echo "== models (text encoder: $CLIP, ComfyUI type $DISTORCH_REAL_CLIP_TYPE)"
(cd "$COMFYUI_DIR" && "$PYTHON" "$REPO/tests/comfyui/real/make_real_models.py" "$WORK/models" "$CLIP")
printf 'checkpoints: %s\ndiffusion_models: %s\ntext_encoders: %s\n' "$WORK/models" \
  "$WORK/models/diffusion_models" "$WORK/models/text_encoders" > "$WORK/extra_paths.yaml"
printf 'distorch:\n  base_path: %s\n  diffusion_models: diffusion_models\n  text_encoders: text_encoders\n' \
  "$WORK/models" > "$WORK/extra_paths.yaml"

echo "== distorchd"
printf 'grace_period_s = 1\n' > "$WORK/distorchd.toml"
"$DISTORCHD" --config "$WORK/distorchd.toml" --socket "$WORK/d.sock" --devices sim:0=4GiB,sim:1=4GiB \
  > "$WORK/distorchd.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do [[ -S "$WORK/d.sock" ]] && break; sleep 0.1; done

echo "== ComfyUI on 127.0.0.1:$PORT"
DEVICE_FLAG=--cpu
if "$PYTHON" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then DEVICE_FLAG=; fi
(cd "$COMFYUI_DIR" && exec "$PYTHON" main.py $DEVICE_FLAG --listen 127.0.0.1 --port "$PORT" \
  --front-end-root "$WORK/fe" --extra-model-paths-config "$WORK/extra_paths.yaml" \
  > "$WORK/comfyui.log" 2>&1) & pids+=($!)
for _ in $(seq 240); do curl -sf "http://127.0.0.1:$PORT/system_stats" >/dev/null && break; sleep 0.5; done
grep -h "STUBBED" "$WORK/comfyui.log" || true
grep -h "distorch" "$WORK/comfyui.log" | head -20

"$PYTHON" "$REPO/tests/comfyui/real/drive.py" "$PORT" "$DISTORCHCTL" "$WORK/d.sock" "$WORK/comfyui.log"
