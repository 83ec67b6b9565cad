"""Prompt builders for drive.py's flows (ComfyUI's API format): distorch's own loader
nodes and the stock ones, the probe nodes (tests/comfyui/real/probe_node), a text
encoding + one sampler step to compare outputs, LoRA, and ComfyUI-MultiGPU's nodes
(MultiGPU's names and inputs, sim:0/sim:1 where a user wrote cuda:0/cuda:1); and the
model files run_real.sh writes (make_real_models.py).
"""

import os

from harness import PROBE_OUT, run_prompt

UNET = "tiny_sd15_unet.safetensors"
TRIPLE = ("clip_l.safetensors", "clip_g.safetensors", "t5xxl_fp8_e4m3fn.safetensors")
CKPT = "tiny_sd15.safetensors"
LORA = "tiny_sd15_lora.safetensors"
VAE_FILE = "tiny_sd15_vae.safetensors"
GGUF_Q8, GGUF_F16 = "tiny_sd15_q8_0.gguf", "tiny_sd15_f16.gguf"


def broker(**inputs):
    opts = {"compute_device": "sim:0", "virtual_vram_gb": 0.0, "donor_device": "cpu",
            "expert_mode_allocations": "", "keep_loaded": False}
    opts.update(inputs)
    return opts


def unet_node(stock=False, keep=True):
    if stock:
        return {"class_type": "UNETLoader", "inputs": {"unet_name": UNET, "weight_dtype": "default"}}
    return {"class_type": "DistorchUNETLoader", "inputs": broker(
        unet_name=UNET, weight_dtype="default", expert_mode_allocations="sim:0,50%;sim:1,*",
        keep_loaded=keep)}


def clip_node(name, ctype, stock=False, alloc="", keep=False):
    if stock:
        return {"class_type": "CLIPLoader", "inputs": {"clip_name": name, "type": ctype}}
    return {"class_type": "DistorchCLIPLoader", "inputs": broker(
        clip_name=name, type=ctype, expert_mode_allocations=alloc, keep_loaded=keep)}


def probe(label, model=None, clip=None, digest=True):
    inputs = {"label": label, "digest": digest}
    if model:
        inputs["model"] = model
    if clip:
        inputs["clip"] = clip
    return {"class_type": "DistorchProbe", "inputs": inputs}


def unet_clip_prompt(label, stock=False, keep=True, clip=("clip_l.safetensors", "stable_diffusion", "")):
    return {"1": unet_node(stock, keep),
            "2": clip_node(clip[0], clip[1], stock, clip[2]),
            "3": probe(label, ["1", 0], ["2", 0])}


def outputs(p, label, model, clip):
    """Adds CLIPTextEncode + a one-step KSampler on model/clip and an output probe."""
    p["5"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": clip, "text": "a photo of a cat"}}
    p["6"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    p["7"] = {"class_type": "KSampler", "inputs": {
        "model": model, "positive": ["5", 0], "negative": ["5", 0], "latent_image": ["6", 0],
        "seed": 1, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal",
        "denoise": 1.0}}
    p["8"] = {"class_type": "DistorchOutputProbe", "inputs": {
        "label": label, "conditioning": ["5", 0], "latent": ["7", 0]}}
    return p


def lora_prompt(label, stock, sm, sc):
    p = unet_clip_prompt(label, stock=stock)
    p["4"] = {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["2", 0],
                                                     "lora_name": LORA, "strength_model": sm,
                                                     "strength_clip": sc}}
    p["3"] = probe(label, ["4", 0], ["4", 1])
    return outputs(p, label, ["4", 0], ["4", 1])


def stock_probe(label, node):
    """A stock loader's probe digest, once per run (the reference for byte equality)."""
    if not os.path.exists(os.path.join(PROBE_OUT, f"{label}.json")):
        run_prompt({"1": node, "2": probe(label, ["1", 0])}, f"stock {node['class_type']}")
    return label


def mg(class_type, **inputs):
    return {"class_type": class_type, "inputs": inputs}


def unet_distorch2(**kw):
    inputs = dict(unet_name=UNET, weight_dtype="default", compute_device="sim:0", virtual_vram_gb=4.0,
                  donor_device="cpu", expert_mode_allocations="", eject_models=True)
    inputs.update(kw)
    return mg("UNETLoaderDisTorch2MultiGPU", **inputs)


def clip_distorch2(**kw):
    inputs = dict(clip_name="clip_l.safetensors", type="stable_diffusion", device="sim:0",
                  virtual_vram_gb=0.0, donor_device="cpu", expert_mode_allocations="", eject_models=False)
    inputs.update(kw)
    return mg("CLIPLoaderDisTorch2MultiGPU", **inputs)
