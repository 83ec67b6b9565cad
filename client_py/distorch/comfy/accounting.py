"""What ComfyUI's memory accounting is told about a broker model.

ComfyUI sizes every load by the patcher's model_size(): load_models_gpu frees
VRAM for model_size() - loaded_size() on the load device and, for a classic
(non-DynamicVRAM) patcher, asks for model_size() bytes of pinned-memory budget
(ComfyUI 0.33.0 comfy/model_management.py load_models_gpu: total_pins_required,
then free_memory(pins_required=...) -> ensure_pin_budget / ensure_pin_registerable,
which unpin DynamicVRAM models' host buffers to make room).

Broker memory is already resident where distorchd placed it, ComfyUI never
moves, pins or frees it, and it is counted once by the daemon for every
process that maps it. So a DistorchModelPatcher reports only this process's
own tensors (key conversions, dtype casts, LoRA copies, private copies of
unstreamable weights) as its size, all of them loaded: ComfyUI then evicts
nothing and unpins nothing for the broker's bytes.
"""

from __future__ import annotations

import logging

import torch

from .loading import BROKER_MEMORY_ATTR

logger = logging.getLogger(__name__)


def managed_bytes(model: torch.nn.Module) -> int:
    """Bytes of `model`'s parameters and buffers that are this process's own
    memory. A model without a broker memory map (not adopted) counts whole,
    as ComfyUI's module_size does."""
    index = getattr(model, BROKER_MEMORY_ATTR, None)
    total = 0
    seen = set()
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) in seen or t.device.type == "meta":
            continue  # shared tensors once; meta tensors (ejected) hold no memory
        seen.add(id(t))
        if index is not None and index.lookup(t) is not None:
            continue
        total += t.numel() * t.element_size()
    return total
