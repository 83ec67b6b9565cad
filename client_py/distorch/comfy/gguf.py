"""ComfyUI-GGUF (city96) support: its loader nodes get distorch twins.

ComfyUI-GGUF reads a .gguf file into GGMLTensors that view the file through
numpy's mmap. Inside a distorch node the GGUF reader still runs (it parses the
header and builds the GGMLTensor wrappers), and then every wrapper is rebuilt
around the broker's bytes for that tensor, so the model's quantised weights
are broker memory, dequantised at forward by GGUF's own ops.

What a GGMLTensor is (ComfyUI-GGUF ops.py and loader.py): a torch.Tensor
subclass holding the tensor's *storage*, plus `tensor_type` (the GGML type)
and `tensor_shape` (the logical, dequantised shape). For F32/F16 the storage is
the typed tensor in its logical shape; for quantised types (Q8_0, Q4_K, ...)
and BF16 it is uint8 in gguf-py's byte shape, (*leading dims, bytes per row).
The class overrides `.shape` to answer `tensor_shape`, so the storage shape is
only `size()`. The broker reports quantised tensors as a flat uint8 run of
their exact byte length (adopt.py), which is reshaped to `size()` here.
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
# GGMLTensor attributes that its constructor takes; any other instance
# attribute (patches, is_largest_weight, ...) is copied over as it is.
_CTOR_ATTRS = ("tensor_type", "tensor_shape")


def find_modules(stock_mappings) -> Optional[Tuple[ModuleType, Optional[ModuleType]]]:
    """(GGUF's nodes module, its loader module) when ComfyUI-GGUF is loaded."""
    cls = stock_mappings.get("UnetLoaderGGUF")
    if cls is None:
        return None
    nodes_mod = sys.modules.get(cls.__module__)
    if nodes_mod is None or not callable(getattr(nodes_mod, "gguf_sd_loader", None)):
        return None
    loader = nodes_mod.gguf_sd_loader
    if getattr(loader, "__distorch_patch__", False):
        loader = loader.__wrapped__  # wrapped at an earlier install: the loader module is GGUF's
    loader_mod = sys.modules.get(loader.__module__)
    return nodes_mod, loader_mod


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _reinterpret(raw: torch.Tensor, like: torch.Tensor) -> Optional[torch.Tensor]:
    """`raw` (broker bytes) viewed with `like`'s storage dtype and storage
    shape, without a copy; None when the bytes cannot stand in for `like`."""
    if raw.device.type == "meta" or not raw.is_contiguous():
        return None
    if _nbytes(raw) != _nbytes(like):
        return None
    # like.size(), never like.shape: a GGMLTensor's .shape is its logical
    # shape ([320, 1280] for a Q8_0 matrix whose 435200 bytes are [320, 1360]).
    storage_shape = like.size()
    flat = raw.reshape(-1)
    if flat.dtype != torch.uint8:
        flat = flat.view(torch.uint8)
    if like.dtype != torch.uint8:
        flat = flat.view(like.dtype)
    return flat.view(storage_shape)


def _rewrap(value: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """A tensor of value's class around `data`, with value's GGUF attributes."""
    attrs = dict(getattr(value, "__dict__", {}))
    if "tensor_type" not in attrs:
        return data  # not a GGMLTensor: the plain view is what the loader made
    kwargs = {name: attrs.pop(name) for name in _CTOR_ATTRS if name in attrs}
    kwargs.setdefault("tensor_shape", value.shape)
    out = type(value)(data, **kwargs)
    for name, attr in attrs.items():
        # The loader marks the largest weight for ComfyUI-GGUF's VRAM
        # estimate; patch lists must not be shared with the file-backed twin.
        setattr(out, name, list(attr) if isinstance(attr, list) else attr)
    return out


def rebind(state_dict: dict, loaded) -> Tuple[int, int]:
    """Swaps file-backed GGMLTensors for broker-backed ones in place.
    Returns (tensors rebound, tensors left client-owned)."""
    rebound = kept = quantised_bytes = 0
    for key, value in list(state_dict.items()):
        if not isinstance(value, torch.Tensor):
            continue
        raw = None
        for prefix in PREFIXES:
            raw = loaded.tensors.get(prefix + key)
            if raw is not None:
                break
        data = _reinterpret(raw, value) if raw is not None else None
        if data is None:
            kept += 1
            continue
        state_dict[key] = _rewrap(value, data)
        if value.dtype == torch.uint8 and getattr(value, "tensor_type", None) is not None:
            quantised_bytes += _nbytes(data)
        rebound += 1
    if quantised_bytes:
        logger.debug("distorch: %d bytes of quantised GGUF blocks on broker memory",
                     quantised_bytes)
    return rebound, kept


def _wrap_loader(module: ModuleType, name: str) -> Optional[patches.Undo]:
    original = getattr(module, name, None)
    problem = patches.signature_problem(original, required=("path",))
    if problem:
        patches.report_left_out(f"ComfyUI-GGUF {name}", problem,
                                "GGUF models load the GGUF way (not shared).")
        return None

    def gguf_loader(path, *args, **kwargs):
        adoption = loading.active()
        if adoption is not None and adoption.mode == "skeleton":
            # The skeleton pass learns pins from meta tensors of safetensors
            # files; a GGUF file gives it nothing, and running the loader here
            # would build the whole model from the file once more for nothing.
            raise loading.SkeletonUnsupported(str(path))
        result = original(path, *args, **kwargs)
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
    """Wraps ComfyUI-GGUF's loader when its nodes are in stock_mappings. Called
    at distorch's import and again after each custom node ComfyUI loads later
    (late_nodes.py), so ComfyUI-GGUF may load before or after distorch; a
    loader wrapped once is left as it is."""
    found = find_modules(stock_mappings)
    if found is None:
        return []
    undos = []
    fresh = False
    for module in {id(m): m for m in found if m is not None}.values():
        if getattr(getattr(module, "gguf_sd_loader", None), "__distorch_patch__", False):
            continue  # wrapped already: ComfyUI-GGUF was seen at an earlier call
        fresh = True
        undo = _wrap_loader(module, "gguf_sd_loader")
        if undo:
            undos.append(undo)
    if fresh:
        logger.info("distorch: ComfyUI-GGUF found; GGUF loader nodes get distorch versions")
    return undos
