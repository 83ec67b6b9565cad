"""One "ComfyUI process" with the ComfyUI-GGUF stand-in (fake_gguf/) loaded
before distorch, for test_gguf_quant_integration.py; the real distorch.Client
(DISTORCH_SOCKET). JSON commands on stdin, one JSON reply line each:
  {"op": "load", "file": "q.gguf", "keep": false}  DistorchUnetLoaderGGUF + RunModel
  {"op": "stock", "file": "q.gguf"}                 ComfyUI-GGUF's own UnetLoaderGGUF + RunModel
"""

import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "fake_comfy"))
sys.path.insert(0, os.path.join(HERE, "fake_gguf"))

import torch  # noqa: E402

import comfyui_gguf  # noqa: E402
import distorch.comfy as dc  # noqa: E402
import folder_paths  # noqa: E402
import nodes  # noqa: E402
from execution import PromptExecutor  # noqa: E402

folder_paths.MODELS_DIR = os.environ["FAKE_COMFY_MODELS"]
nodes.NODE_CLASS_MAPPINGS.update(comfyui_gguf.NODE_CLASS_MAPPINGS)  # loaded before distorch
classes, _ = dc.setup(nodes.NODE_CLASS_MAPPINGS)
executor = PromptExecutor({**nodes.NODE_CLASS_MAPPINGS, **classes})


def sha256(t: torch.Tensor) -> str:
    flat = torch.Tensor(t.detach()).reshape(-1)  # storage bytes, not the logical view
    return hashlib.sha256(flat.view(torch.uint8).numpy().tobytes()).hexdigest()


def load(cmd):
    prompt = {"L": {"class_type": "DistorchUnetLoaderGGUF",
                    "inputs": {"unet_name": cmd["file"], "compute_device": "sim:0",
                               "virtual_vram_gb": 0.0, "donor_device": "cpu",
                               "expert_mode_allocations": "", "keep_loaded": cmd.get("keep", False)}},
              "R": {"class_type": "RunModel", "inputs": {"model": ["L", 0]}}}
    out = executor.execute(prompt, "R")[0]
    patcher = executor.execute(prompt, "L")[0]
    loaded = patcher.model._distorch_placement.entry.loaded[0][1]
    spans = [(t.data_ptr(), t.data_ptr() + t.numel() * t.element_size())
             for t in loaded.tensors.values() if t.numel()]
    params = {}
    for key, p in patcher.model.named_parameters():
        params[key] = {"sha256": sha256(p), "class": type(p).__name__, "dtype": str(p.dtype),
                       "tensor_type": getattr(getattr(p, "tensor_type", None), "name", None),
                       "shape": list(p.shape), "storage": list(p.size()),
                       "broker": any(a <= p.data_ptr() < b for a, b in spans)}
    return {"result": out.tolist(), "shared": loaded.shared, "model_id": loaded.model_id,
            "params": params}


def handle(cmd):
    if cmd["op"] == "load":
        return load(cmd)
    if cmd["op"] == "stock":
        model = comfyui_gguf.nodes.UnetLoaderGGUF().load_unet(cmd["file"])[0]
        return {"result": nodes.RunModel().run(model)[0].tolist()}
    raise ValueError(cmd["op"])


print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
for line in sys.stdin:
    try:
        reply = handle(json.loads(line))
        reply["ok"] = True
    except Exception as e:  # report, keep serving
        import traceback
        reply = {"ok": False, "error": repr(e), "trace": traceback.format_exc()}
    print(json.dumps(reply), flush=True)
