"""ComfyUI-GGUF (city96) support: its loader nodes get distorch twins.

ComfyUI-GGUF reads a .gguf file into GGMLTensors that view the file through
numpy's mmap. Inside a distorch node the GGUF reader still runs (it parses the
header and builds the GGMLTensor wrappers), and then every wrapper is rebuilt
around the broker's bytes for that tensor, so the model's quantised weights
are broker memory, dequantised at forward by GGUF's own ops.
"""

from __future__ import annotations

import logging
import sys
from types import ModuleType
from typing import List, Optional, Tuple

import torch

from . import loading, patches

logger = logging.getLogger(__name__)

PREFIXES = ("", "model.diffusion_model.")


def find_modules(stock_mappings) -> Optional[Tuple[ModuleType, Optional[ModuleType]]]:
    """(GGUF's nodes module, its loader module) when ComfyUI-GGUF is loaded."""
    cls = stock_mappings.get("UnetLoaderGGUF")
    if cls is None:
        return None
    nodes_mod = sys.modules.get(cls.__module__)
    if nodes_mod is None or not callable(getattr(nodes_mod, "gguf_sd_loader", None)):
        return None
    loader_mod = sys.modules.get(nodes_mod.gguf_sd_loader.__module__)
    return nodes_mod, loader_mod


def _reinterpret(raw: torch.Tensor, like: torch.Tensor) -> Optional[torch.Tensor]:
    if raw.numel() * raw.element_size() != like.numel() * like.element_size():
        return None
    flat = raw.contiguous().reshape(-1).view(torch.uint8)
    return flat.view(like.dtype).reshape(like.shape)


def rebind(state_dict: dict, loaded) -> Tuple[int, int]:
    """Swaps file-backed GGMLTensors for broker-backed ones in place.
    Returns (tensors rebound, tensors left client-owned)."""
    rebound = kept = 0
    for key, value in list(state_dict.items()):
        raw = None
        for prefix in PREFIXES:
            raw = loaded.tensors.get(prefix + key)
            if raw is not None:
                break
        data = _reinterpret(raw, value) if raw is not None else None
        if data is None:
            kept += 1
            continue
        tensor_type = getattr(value, "tensor_type", None)
        if tensor_type is not None:
            state_dict[key] = type(value)(data, tensor_type=tensor_type,
                                          tensor_shape=getattr(value, "tensor_shape", value.shape))
        else:
            state_dict[key] = data
        rebound += 1
    return rebound, kept


def _wrap_loader(module: ModuleType, name: str) -> Optional[patches.Undo]:
    original = getattr(module, name, None)
    problem = patches.signature_problem(original, required=("path",))
    if problem:
        patches.report_left_out(f"ComfyUI-GGUF {name}", problem,
                                "GGUF models load the GGUF way (not shared).")
        return None

    def gguf_loader(path, *args, **kwargs):
        result = original(path, *args, **kwargs)
        adoption = loading.active()
        if adoption is None or adoption.mode != "real":
            return result
        sd = result[0] if isinstance(result, tuple) else result
        loaded = adoption.loaded_for(str(path))
        rebound, kept = rebind(sd, loaded)
        logger.info("distorch: %s: %d GGUF tensors on broker memory, %d client-owned",
                    path, rebound, kept)
        return result
    return patches._replace(module, name, gguf_loader)


def install(stock_mappings) -> List[patches.Undo]:
    found = find_modules(stock_mappings)
    if found is None:
        return []
    undos = []
    for module in {id(m): m for m in found if m is not None}.values():
        undo = _wrap_loader(module, "gguf_sd_loader")
        if undo:
            undos.append(undo)
    logger.info("distorch: ComfyUI-GGUF found; GGUF loader nodes get distorch versions")
    return undos
