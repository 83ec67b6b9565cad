"""ComfyUI's DynamicVRAM (comfy-aimdo), on by default on recent NVIDIA installs.

DynamicVRAM's ModelPatcherDynamic streams weights through a VRAM cache it
manages itself, and on some paths writes re-quantised weights back into the
model's own tensors. Broker weights are shared and read-only, and the broker
has already decided where every block lives, so a model loaded through a
distorch node uses ComfyUI's classic patcher (the same demotion ComfyUI itself
applies for weight hooks and torch.compile); DynamicVRAM keeps managing every
other model. This is said once, in the log, when the first such model loads.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger(__name__)

_told = False

MESSAGE = (
    "distorch: ComfyUI's DynamicVRAM (comfy-aimdo) is on. Models loaded through distorch "
    "nodes are placed by distorchd (compute_device / virtual_vram_gb / "
    "expert_mode_allocations) and run on ComfyUI's classic cast-at-forward path, so "
    "DynamicVRAM does not manage them; it still manages every other model. Nothing to "
    "change unless you want DynamicVRAM to manage a model: then load that model with "
    "ComfyUI's stock loader node instead.")


def enabled() -> bool:
    """True when this ComfyUI runs with DynamicVRAM (aimdo) active."""
    mm = sys.modules.get("comfy.memory_management")
    if mm is None:
        try:
            import comfy.memory_management as mm  # type: ignore[no-redef]
        except ImportError:
            return False
    return bool(getattr(mm, "aimdo_enabled", False))


def note_demoted(patcher: object) -> None:
    """Called when a DynamicVRAM patcher is turned into the classic kind."""
    tell_once()


def tell_once() -> bool:
    """Logs MESSAGE the first time it is called while DynamicVRAM is on."""
    global _told
    if _told or not enabled():
        return False
    _told = True
    logger.warning(MESSAGE)
    return True
