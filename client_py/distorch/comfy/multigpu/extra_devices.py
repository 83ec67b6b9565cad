"""Per-thread answers for two device questions distorch's own nodes never
change, but MultiGPU's nodes do: `vae_device` (the advanced checkpoint
loaders' VAE device) and `unet_offload_device` (Florence2's offload_device).

`override(vae=..., unet_offload=...)` (two slots of devices.override_devices)
sets them for the current thread within a block; `install(mm)` puts in the
ComfyUI functions that read them (answering as before on every other thread and
outside such a block).
"""

from __future__ import annotations

from types import ModuleType
from typing import ContextManager, List, Optional

import torch

from .. import devices, patches

FUNCTIONS = {devices.VAE_SLOT: "vae_device", devices.UNET_OFFLOAD_SLOT: "unet_offload_device"}


def override(vae: Optional[torch.device] = None,
             unet_offload: Optional[torch.device] = None) -> ContextManager[None]:
    """devices.override_devices for these two slots only."""
    return devices.override_devices(vae=vae, unet_offload=unet_offload)


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
        chosen = devices.current_override(slot)
        return chosen if chosen is not None else original(*args, **kwargs)
    device_function.__name__ = name
    return patches._replace(mm, name, device_function)


def install(mm: ModuleType) -> List[patches.Undo]:
    undos = [_patch(mm, slot) for slot in FUNCTIONS]
    return [u for u in undos if u is not None]
