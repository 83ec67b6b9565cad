"""Test-only ComfyUI output node for run_real.sh and comfy_instances_bench.py:
makes ComfyUI's model management load a MODEL and/or a CLIP (load_models_gpu,
which also applies LoRA patches) and reads every weight, which is what a
sampler needs from them. Installed only by those scripts.

With `label` set and $DISTORCH_PROBE_OUT naming a directory, it writes
<label>.json there: the wall-clock time the node was entered (`entered`:
every node before it, the loaders, has finished), the time it finished, and
per weight [sha1 of its bytes, dtype, shape, sum] so a driver can compare a
distorch-loaded model with a stock-loaded one exactly. `digest=false` only
sums (the benchmark: reading every weight without hashing it).

`placement` (always written) says, per model/clip/vae, where ComfyUI will run it
and where its weights are: the patcher's load/offload device, the VAE's device,
whether distorch adopted it (`broker`), distorch's compute device for it, the
bytes per broker device its weights are on (distorch's own record of each
parameter: None = this process's own memory) and the bytes per torch device."""

import hashlib
import json
import logging
import os
import time

import torch

import comfy.model_management


def _raw(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes as a flat uint8 tensor (GGUF's GGMLTensor included)."""
    t = t.detach()
    if type(t) is not torch.Tensor and isinstance(t, torch.Tensor):
        t = t.as_subclass(torch.Tensor)
    return t.contiguous().reshape(-1).view(torch.uint8)


def _sum(t: torch.Tensor) -> float:
    t = t.detach()
    if type(t) is not torch.Tensor and isinstance(t, torch.Tensor):
        t = t.as_subclass(torch.Tensor)
    if t.dtype in (torch.uint8, torch.int8) or not t.is_floating_point():
        return float(t.to(torch.float64).sum()) if t.numel() < (1 << 24) else 0.0
    total = 0.0
    flat = t.reshape(-1)
    for i in range(0, flat.numel(), 1 << 24):  # fp8/fp16 -> fp32 a chunk at a time
        total += float(flat[i:i + (1 << 24)].float().sum())
    return total


def _placement(patcher) -> dict:
    """Where ComfyUI runs `patcher` and where its weights are (bytes per device)."""
    model = patcher.model
    record = getattr(model, "_distorch_placement", None)
    broker_bytes, torch_bytes = {}, {}
    for key, t in list(model.named_parameters()) + list(model.named_buffers()):
        n = t.numel() * t.element_size()
        torch_bytes[str(t.device)] = torch_bytes.get(str(t.device), 0) + n
        if record is not None:
            where = str(record.devices.get(key))  # "None": this process's own tensor
            broker_bytes[where] = broker_bytes.get(where, 0) + n
    return {"load_device": str(patcher.load_device), "offload_device": str(patcher.offload_device),
            "broker": record is not None, "compute": getattr(record, "compute", None),
            "broker_bytes": broker_bytes, "torch_bytes": torch_bytes}


class DistorchProbe:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {},
                "optional": {"model": ("MODEL",), "clip": ("CLIP",), "vae": ("VAE",),
                             "label": ("STRING", {"default": ""}),
                             "digest": ("BOOLEAN", {"default": True})}}

    RETURN_TYPES = ()
    FUNCTION = "probe"
    OUTPUT_NODE = True
    CATEGORY = "distorch/test"

    def probe(self, model=None, clip=None, label="", digest=True, vae=None):
        entered = time.time()
        named = [(w, p) for w, p in (("model", model), ("clip", getattr(clip, "patcher", None)),
                                     ("vae", getattr(vae, "patcher", None))) if p is not None]
        patchers = [p for _, p in named]
        comfy.model_management.load_models_gpu(patchers)
        placement = {w: _placement(p) for w, p in named}
        if vae is not None:
            placement["vae"]["vae_device"] = str(getattr(vae, "device", ""))
        sums, weights = [], {}
        for which, patcher in named:
            total = 0.0
            for name, p in list(patcher.model.named_parameters()) + list(patcher.model.named_buffers()):
                if p.device.type == "meta":
                    raise RuntimeError(f"probe: weight {name} was dropped (meta)")
                s = _sum(p)
                total += s
                if digest and p.numel():
                    h = hashlib.sha1(_raw(p).cpu().numpy()).hexdigest()
                    weights[f"{which}:{name}"] = [h, str(p.dtype), list(p.shape), s]
            sums.append(total)
        logging.info("DistorchProbe: checksums %s", sums)
        out_dir = os.environ.get("DISTORCH_PROBE_OUT")
        if label and out_dir:
            doc = {"label": label, "entered": entered, "done": time.time(), "sums": sums,
                   "weights": weights, "placement": placement}
            tmp = os.path.join(out_dir, f".{label}.json.tmp")
            with open(tmp, "w") as f:
                json.dump(doc, f)
            os.replace(tmp, os.path.join(out_dir, f"{label}.json"))
        return {"ui": {"text": [repr(sums)], "entered": [entered]}}


class DistorchOutputProbe:
    """Saves what a model computed (a CONDITIONING from CLIPTextEncode, a LATENT from a
    sampler) to $DISTORCH_PROBE_OUT/<label>.pt, so a driver can compare the outputs of
    distorch-loaded and stock-loaded models (LoRA patches applied to a cast copy at
    forward change the output, not the parameter)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"label": ("STRING", {"default": ""})},
                "optional": {"conditioning": ("CONDITIONING",), "latent": ("LATENT",)}}

    RETURN_TYPES = ()
    FUNCTION = "probe"
    OUTPUT_NODE = True
    CATEGORY = "distorch/test"

    def probe(self, label, conditioning=None, latent=None):
        out = {}
        if conditioning is not None:
            out["cond"] = conditioning[0][0].detach().float().cpu().clone()
            pooled = conditioning[0][1].get("pooled_output")
            if pooled is not None:
                out["pooled"] = pooled.detach().float().cpu().clone()
        if latent is not None:
            out["latent"] = latent["samples"].detach().float().cpu().clone()
        out_dir = os.environ.get("DISTORCH_PROBE_OUT")
        if out_dir:
            torch.save(out, os.path.join(out_dir, f"{label}.pt"))
        return {"ui": {"text": [repr({k: float(v.sum()) for k, v in out.items()})]}}


NODE_CLASS_MAPPINGS = {"DistorchProbe": DistorchProbe, "DistorchOutputProbe": DistorchOutputProbe}
