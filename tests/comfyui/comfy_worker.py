"""One "ComfyUI process" for the integration tests: the fake ComfyUI with
distorch.comfy installed and the real distorch.Client (DISTORCH_SOCKET).

Reads JSON commands, one per line, on stdin; answers one JSON line each:
  {"op": "prompt", "prompt": {...}, "node": "id"}   run a node (cached like ComfyUI)
  {"op": "free", "unload_models": true, "free_memory": false}   the /free flow
  {"op": "native", "role_file": "x.safetensors"}    stock UNETLoader + RunModel
  {"op": "inspect", "node": "id"}                    where the node's weights live
  {"op": "rss"}                                      RssAnon / RssShmem in kB
  {"op": "encode", "prompt": {...}, "node": "id", "tokens": [[...]]}   a CLIP node's encode
  {"op": "broker_bytes", "node": "id"}               sha256 of each broker tensor's bytes
"""

import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "fake_comfy"))

import torch  # noqa: E402

import distorch.comfy as dc  # noqa: E402
import folder_paths  # noqa: E402
import nodes  # noqa: E402
from execution import PromptExecutor  # noqa: E402
from main import free_flow  # noqa: E402

folder_paths.MODELS_DIR = os.environ["FAKE_COMFY_MODELS"]
classes, _ = dc.setup(nodes.NODE_CLASS_MAPPINGS)
from comfy_extras import nodes_hooks, nodes_model_merging  # noqa: E402  (ComfyUI's extras: hooks, saving)
executor = PromptExecutor({**nodes.NODE_CLASS_MAPPINGS, **nodes_hooks.NODE_CLASS_MAPPINGS,
                           **nodes_model_merging.NODE_CLASS_MAPPINGS, **classes})


def rss():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon", "RssShmem", "VmRSS")):
                key, value = line.split(":")
                out[key] = int(value.split()[0])
    return out


def tolist(value):
    return value.tolist() if isinstance(value, torch.Tensor) else None


def handle(cmd):
    op = cmd["op"]
    if op == "prompt":
        out = executor.execute(cmd["prompt"], cmd["node"])
        first = out[0] if isinstance(out, (tuple, list)) and out else None  # output nodes return {}
        return {"result": tolist(first), "executed": list(executor.executed)}
    if op == "free":
        free_flow(executor, cmd.get("unload_models", False), cmd.get("free_memory", False))
        return {}
    if op == "native":
        model = nodes.UNETLoader().load_unet(cmd["file"])[0]
        return {"result": tolist(nodes.RunModel().run(model)[0])}
    if op == "inspect":
        patcher = executor.outputs[cmd["node"]][1][0]
        placement = patcher.model._distorch_placement
        loaded = placement.entry.loaded[0][1]
        ptrs = {t.data_ptr() for t in loaded.tensors.values()}
        params = dict(patcher.model.named_parameters())
        return {"devices": sorted(set(loaded.tensor_devices.values())),
                "model_id": loaded.model_id, "shared": loaded.shared,
                "params_in_broker": sum(1 for p in params.values() if p.data_ptr() in ptrs),
                "params": len(params),
                "cast": sorted(n for n, m in patcher.model.named_modules()
                               if getattr(m, "_distorch_cast", False))}
    if op == "rss":
        return rss()
    if op == "encode":
        clip = executor.execute(cmd["prompt"], cmd["node"])[0]
        return {"result": tolist(clip.encode(torch.tensor(cmd["tokens"])))}
    if op == "broker_bytes":
        out = executor.outputs[cmd["node"]][1][0]
        patcher = getattr(out, "patcher", out)
        loaded = patcher.model._distorch_placement.entry.loaded[0][1]
        return {"model_id": loaded.model_id,
                "sha256": {n: hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()
                           for n, t in loaded.tensors.items()}}
    raise ValueError(op)


print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
for line in sys.stdin:
    try:
        reply = handle(json.loads(line))
        reply["ok"] = True
    except Exception as e:  # report, keep serving
        import traceback
        reply = {"ok": False, "error": repr(e), "trace": traceback.format_exc()}
    print(json.dumps(reply), flush=True)
