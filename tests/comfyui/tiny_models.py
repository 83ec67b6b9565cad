"""Seeded model files for the tiny ComfyUI-shaped architecture in fake_comfy
(comfy/sd.py), written with tests/tools/make_model.py."""

from __future__ import annotations

import os
from typing import Dict

import numpy as np

from make_model import write_safetensors


def _rand(rng, *shape):
    return (rng.standard_normal(shape) * 0.5).astype(np.float32)


def unet(seed: int = 1) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = {"conv_in.weight": _rand(rng, 8, 4, 3, 3), "conv_in.bias": _rand(rng, 8),
         "pos_embed": _rand(rng, 1, 8), "out.weight": _rand(rng, 4, 8), "out.bias": _rand(rng, 4)}
    for i in range(3):
        t[f"blocks.{i}.proj.weight"] = _rand(rng, 8, 8)
        t[f"blocks.{i}.proj.bias"] = _rand(rng, 8)
    return t


def text_encoder(seed: int = 2) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"embed.weight": _rand(rng, 16, 8), "q.weight": _rand(rng, 8, 8), "k.weight": _rand(rng, 8, 8),
            "v.weight": _rand(rng, 8, 8), "qkv.bias": _rand(rng, 24), "proj.weight": _rand(rng, 8, 24),
            "proj.bias": _rand(rng, 8)}


def vae(seed: int = 3) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"dec.weight": _rand(rng, 3, 4, 1, 1), "dec.bias": _rand(rng, 3)}


def lora(block: int, seed: int = 4) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + block)
    key = f"blocks.{block}.proj.weight"
    return {key + ".lora_up": _rand(rng, 8, 2), key + ".lora_down": _rand(rng, 2, 8)}


def checkpoint() -> Dict[str, np.ndarray]:
    out = {"model.diffusion_model." + k: v for k, v in unet(5).items()}
    out.update({"cond_stage_model." + k: v for k, v in text_encoder(6).items()})
    out.update({"first_stage_model." + k: v for k, v in vae(7).items()})
    return out


def write_all(directory: str) -> Dict[str, str]:
    """Writes every file the tests use; returns {role: file name}."""
    files = {"unet_a": unet(1), "unet_b": unet(11), "unet_c": unet(21), "unet_d": unet(31),
             "unet_e": unet(41), "te_a": text_encoder(2), "te_b": text_encoder(12),
             "vae": vae(3), "ckpt": checkpoint(), "cnet": vae(9), "lora1": lora(1), "lora2": lora(2)}
    names = {}
    for role, tensors in files.items():
        name = f"{role}.safetensors"
        write_safetensors(os.path.join(directory, name), tensors, {"format": "pt"})
        names[role] = name
    return names
