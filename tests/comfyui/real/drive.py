"""run_real.sh's driver: queues prompts through ComfyUI's HTTP API, posts /free,
and checks the daemon's state (`distorchctl --json models`), ComfyUI's
/history and the probe node's weight digests. Each flow prints
`FLOW <name>: PASS|FAIL <why>` and the next flow runs whatever happened;
the exit status is 0 only when every flow passed.

  drive.py PORT CTL SOCKET COMFYUI_LOG        (CTL may be "host-exec /path/distorchctl")

Environment (run_real.sh sets it): DISTORCH_REAL_FLOWS (space separated, in
order), DISTORCH_PROBE_OUT (the probe node's digests), DISTORCH_REAL_MODELS and
DISTORCH_REAL_OUTPUT (ComfyUI's models and output directories), and for the
`keep` flow DISTORCH_REAL_CLIP_FILE/_TYPE/_ALLOC.

Modules (this directory; each one's docstring says what its flows check, and
docs/testing.md lists them):
  harness.py             the run's settings (configure(argv)), HTTP, prompts, the daemon's
                         state, ComfyUI's log, checks
  workflows.py           prompt builders (distorch, stock, probe and MultiGPU nodes)
  flows_basic.py         keep clip_l free_kept reuse kept_unused free_all
  flows_encoders.py      gemma2 triple
  flows_saves.py         checkpoint checkpoint_save lora save save_lora
  flows_gguf.py          gguf gguf_q8
  flows_mgpu_alloc.py    ComfyUI-MultiGPU's names and DisTorch2 allocations: mgpu_names
                         mgpu_unet_vram mgpu_expert_bytes mgpu_expert_logged mgpu_eject
  flows_mgpu_loaders.py  ComfyUI-MultiGPU's loader families placed: mgpu_clip_device
                         mgpu_triple mgpu_checkpoint mgpu_ckpt_advanced mgpu_vae mgpu_gguf
  flows_daemon.py        another ComfyUI with no daemon: autostart no_drop (these need
                         DISTORCH_REAL_WORK, _COMFYUI_DIR, _PYTHON, _COMFY_FLAGS, _DAEMON_BIN)
"""

import os
import sys
import time
import traceback

import harness
from harness import FlowFailed

harness.configure(sys.argv)

import flows_basic as basic  # noqa: E402 (the flows read harness.cfg, set above)
import flows_daemon as daemon  # noqa: E402
import flows_encoders as encoders  # noqa: E402
import flows_gguf as gguf  # noqa: E402
import flows_mgpu_alloc as mgpu_alloc  # noqa: E402
import flows_mgpu_loaders as mgpu_loaders  # noqa: E402
import flows_saves as saves  # noqa: E402

FLOWS = os.environ.get("DISTORCH_REAL_FLOWS", "keep").split()

FLOW_FUNCS = {"keep": basic.flow_keep, "clip_l": basic.flow_clip_l, "free_kept": basic.flow_free_kept,
              "reuse": basic.flow_reuse, "kept_unused": basic.flow_kept_unused, "gemma2": encoders.flow_gemma2,
              "triple": encoders.flow_triple,
              "checkpoint": saves.flow_checkpoint, "checkpoint_save": saves.flow_checkpoint_save,
              "lora": saves.flow_lora, "save": saves.flow_save, "save_lora": saves.flow_save_lora,
              "gguf": gguf.flow_gguf, "gguf_q8": gguf.flow_gguf_q8,
              "free_all": basic.flow_free_all,
              "mgpu_names": mgpu_alloc.flow_mgpu_names, "mgpu_unet_vram": mgpu_alloc.flow_mgpu_unet_vram,
              "mgpu_expert_bytes": mgpu_alloc.flow_mgpu_expert_bytes,
              "mgpu_expert_logged": mgpu_alloc.flow_mgpu_expert_logged,
              "mgpu_clip_device": mgpu_loaders.flow_mgpu_clip_device, "mgpu_triple": mgpu_loaders.flow_mgpu_triple,
              "mgpu_checkpoint": mgpu_loaders.flow_mgpu_checkpoint,
              "mgpu_ckpt_advanced": mgpu_loaders.flow_mgpu_ckpt_advanced,
              "mgpu_vae": mgpu_loaders.flow_mgpu_vae, "mgpu_gguf": mgpu_loaders.flow_mgpu_gguf,
              "mgpu_eject": mgpu_alloc.flow_mgpu_eject,
              "autostart": daemon.flow_autostart, "no_drop": daemon.flow_no_drop}

results = []
for name in FLOWS:
    if name not in FLOW_FUNCS:
        print(f"drive.py: unknown flow {name!r} (known: {' '.join(FLOW_FUNCS)})")
        sys.exit(2)
    print(f"== flow {name}", flush=True)
    t0 = time.time()
    try:
        FLOW_FUNCS[name]()
        results.append((name, "PASS", ""))
    except FlowFailed as e:
        results.append((name, "FAIL", str(e)))
    except Exception as e:  # the driver's own trouble (ComfyUI gone, a file missing)
        results.append((name, "FAIL", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}"))
    status, why = results[-1][1], results[-1][2]
    print(f"FLOW {name}: {status} ({time.time() - t0:.1f} s){': ' + why if why else ''}", flush=True)

print("\n== summary")
for name, status, why in results:
    print(f"FLOW {name}: {status}{': ' + why.splitlines()[0][:300] if why else ''}")
sys.exit(0 if all(s == "PASS" for _, s, _ in results) else 1)
