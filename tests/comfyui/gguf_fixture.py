"""Quantised GGUF models for the fake ComfyUI's tiny UNet, the ComfyUI-GGUF
stand-in (fake_gguf/) on sys.path, and a stub broker that serves GGUF files
the way distorchd does: F32/F16 tensors typed in their logical shape, every
other GGML type as a flat uint8 run of its exact byte length."""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Dict, Tuple

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_GGUF = os.path.join(HERE, "fake_gguf")
if FAKE_GGUF not in sys.path:
    sys.path.insert(0, FAKE_GGUF)  # ahead of a real `gguf` package, if one is installed

import gguf  # noqa: E402  (the stand-in, from FAKE_GGUF)
import make_model  # noqa: E402
from stub_client import StubClient, StubLoaded  # noqa: E402

WIDTH = 256  # rows of 256: whole Q4_K blocks
QUANT_TYPES = ("Q8_0", "Q4_K", "Q4_0")


def quant_unet(seed: int = 1) -> Dict[str, Tuple[str, np.ndarray]]:
    """The tiny UNet (fake_comfy comfy/sd.py) at width 256, its three block
    matrices in Q8_0, Q4_K and Q4_0 and its output matrix in Q4_K, as a
    converted ComfyUI-GGUF file has them (1-D and conv tensors in F32)."""
    rng = np.random.default_rng(seed)

    def rand(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    t = {"conv_in.weight": ("F32", rand(WIDTH, 4, 3, 3)), "conv_in.bias": ("F32", rand(WIDTH)),
         "pos_embed": ("F32", rand(1, WIDTH))}
    for i, qtype in enumerate(QUANT_TYPES):
        t[f"blocks.{i}.proj.weight"] = (qtype, rand(WIDTH, WIDTH))
        t[f"blocks.{i}.proj.bias"] = ("F32", rand(WIDTH))
    t["out.weight"] = ("Q4_K", rand(4, WIDTH))
    t["out.bias"] = ("F32", rand(4))
    return t


def write_quant_unet(path: str, seed: int = 1) -> Dict[str, Tuple[str, np.ndarray]]:
    tensors = quant_unet(seed)
    make_model.write_gguf_arrays(path, tensors, {"general.architecture": "flux",
                                                 "general.file_type": 7})
    return tensors


def file_tensor_bytes(path: str) -> Dict[str, bytes]:
    """Each tensor's bytes as the file stores them."""
    reader = gguf.GGUFReader(path)
    return {t.name: bytes(np.ascontiguousarray(t.data).view(np.uint8).reshape(-1))
            for t in reader.tensors}


def tensor_sha256(t: torch.Tensor) -> str:
    flat = t.detach().reshape(-1) if t.is_contiguous() else t.detach().contiguous().reshape(-1)
    flat = torch.Tensor(flat) if type(flat) is not torch.Tensor else flat
    return hashlib.sha256(flat.view(torch.uint8).cpu().numpy().tobytes()).hexdigest()


_BROKER_DTYPES = {gguf.GGMLQuantizationType.F32: torch.float32,
                  gguf.GGMLQuantizationType.F16: torch.float16}


def broker_tensors(path: str) -> Tuple[bytearray, Dict[str, torch.Tensor]]:
    """One copy of the file's tensor data (the "arena") and the tensors
    distorchd's reply would give, as views of it."""
    reader = gguf.GGUFReader(path)
    arena = bytearray(sum(t.n_bytes for t in reader.tensors))
    base = torch.frombuffer(arena, dtype=torch.uint8) if arena else torch.empty(0, dtype=torch.uint8)
    tensors, offset = {}, 0
    for t in reader.tensors:
        arena[offset:offset + t.n_bytes] = np.ascontiguousarray(t.data).view(np.uint8).tobytes()
        flat = base[offset:offset + t.n_bytes]
        dtype = _BROKER_DTYPES.get(t.tensor_type)
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        tensors[t.name] = flat.view(dtype).view(shape) if dtype is not None else flat
        offset += t.n_bytes
    return arena, tensors


class GgufStubClient(StubClient):
    """StubClient that also serves .gguf files (broker_tensors); every load
    of the same file after the first attaches to the same arena."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.arenas: Dict[str, Tuple[int, bytearray, Dict[str, torch.Tensor]]] = {}

    def load(self, path, allocation="", compute_device="", keep_loaded=False, pins=(), **kwargs):
        if not str(path).endswith(".gguf"):
            return super().load(path, allocation=allocation, compute_device=compute_device,
                                keep_loaded=keep_loaded, pins=pins, **kwargs)
        self.loads.append(dict(path=path, allocation=allocation, compute=compute_device,
                               keep=keep_loaded, pins=tuple(pins)))
        shared = path in self.arenas
        if not shared:
            self.arenas[path] = (next(self._ids), *broker_tensors(path))
        model_id, _, tensors = self.arenas[path]
        devices = {name: compute_device for name in tensors}
        blocks = {name: name.rsplit(".", 1)[0] for name in tensors}
        loaded = StubLoaded(self, path, dict(tensors), devices, blocks, keep_loaded, model_id, shared)
        self.live.append(loaded)
        return loaded
