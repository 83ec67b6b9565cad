"""Per-thread answers for two device questions distorch's own nodes never
change, but MultiGPU's nodes do: `vae_device` (the advanced checkpoint
loaders' VAE device) and `unet_offload_device` (Florence2's offload_device).

`override(vae=..., unet_offload=...)` sets them for the current thread within a
block; `install(mm)` puts in the ComfyUI functions that read them (answering as
before on every other thread and outside such a block).
"""

from __future__ import annotations

import contextlib
import threading
from types import ModuleType
from typing import Dict, Iterator, List, Optional

import torch

from .. import patches

_local = threading.local()
FUNCTIONS = {"vae": "vae_device", "unet_offload": "unet_offload_device"}


def _stack(slot: str) -> List[torch.device]:
    stacks: Dict[str, List[torch.device]] = getattr(_local, "stacks", None) or {}
    _local.stacks = stacks
    return stacks.setdefault(slot, [])


def current(slot: str) -> Optional[torch.device]:
    stack = _stack(slot)
    return stack[-1] if stack else None


@contextlib.contextmanager
def override(vae: Optional[torch.device] = None,
             unet_offload: Optional[torch.device] = None) -> Iterator[None]:
    pushed = []
    try:
        for slot, device in (("vae", vae), ("unet_offload", unet_offload)):
            if device is not None:
                _stack(slot).append(device)
                pushed.append(slot)
        yield
    finally:
        for slot in reversed(pushed):
            _stack(slot).pop()


def _patch(mm: ModuleType, slot: str) -> Optional[patches.Undo]:
    name = FUNCTIONS[slot]
    original = getattr(mm, name, None)
    problem = patches.signature_problem(original, max_required=0) if original is not None \
        else "the function does not exist"
    if problem:
        patches.report_left_out(f"comfy.model_management.{name}", problem,
                                f"MultiGPU-named nodes cannot choose the {slot.replace('_', ' ')} device.")
        return None

    def device_function(*args, **kwargs):
        chosen = current(slot)
        return chosen if chosen is not None else original(*args, **kwargs)
    device_function.__name__ = name
    return patches._replace(mm, name, device_function)


def install(mm: ModuleType) -> List[patches.Undo]:
    undos = [_patch(mm, slot) for slot in FUNCTIONS]
    return [u for u in undos if u is not None]
