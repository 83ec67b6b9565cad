"""Making room on a device the way ComfyUI does, when the broker is short.

distorchd refuses a load that does not fit (RESOURCE_EXHAUSTED): the planner
says "sim:1 is short by 1.50 GiB: placing 3.00 GiB, 1.50 GiB available (free
3.50 GiB - reserve 2.00 GiB)", an arena allocation "cuda:0:
cannot allocate 3.00 GiB, 1.50 GiB free". When ComfyUI's own models or
torch's allocator cache in *this* process hold memory on that device, it is
freed through ComfyUI (`free_memory` until the device has what the load needs
free, then `soft_empty_cache`) and the caller retries once. Only this
process's ComfyUI models are unloaded: broker memory, and models other
ComfyUI instances hold, are never touched. Host RAM (`cpu`) is not freed
here: ComfyUI's free_memory moves models to the CPU, it does not free RAM.

Called on the loading thread (no state of its own).
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from typing import List, Optional

import torch

from . import devices

logger = logging.getLogger(__name__)

_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
          "PiB": 1 << 50}
_SIZE = r"([\d.]+) (B|KiB|MiB|GiB|TiB|PiB)"
_SHORT = re.compile(r"([a-z]+(?::\d+)?) is short by " + _SIZE + r": placing " + _SIZE
                    + r"(?: \([^)]*\))?, " + _SIZE + r" available \(free " + _SIZE + r" - reserve "
                    + _SIZE + r"(?: - broker " + _SIZE + r")?\)")  # older daemons add "- broker 0 B"
_ARENA = re.compile(r"([a-z]+(?::\d+)?): cannot allocate " + _SIZE + r", " + _SIZE + r" free")


@dataclass(frozen=True)
class Shortage:
    """One device the broker is short on: `needed_free` is what the device
    must have free for the load (the bytes placed there and its reserve: what
    is free now plus the bytes missing)."""
    device: str
    missing: int
    needed_free: int


def _bytes(number: str, unit: str) -> int:
    # the daemon prints two decimals: round up by half of the last digit
    return int((float(number) + 0.005) * _UNITS[unit]) if unit != "B" else int(number)


def shortages(error: BaseException) -> List[Shortage]:
    """The devices a RESOURCE_EXHAUSTED load error says are short (else [])."""
    if getattr(error, "code", None) != "RESOURCE_EXHAUSTED":
        return []
    text = getattr(error, "message", None) or str(error)
    found = []
    for m in _SHORT.finditer(text):
        device, short = m.group(1), _bytes(m.group(2), m.group(3))
        placing, reserve = _bytes(m.group(4), m.group(5)), _bytes(m.group(10), m.group(11))
        broker = _bytes(m.group(12), m.group(13)) if m.group(12) else 0
        found.append(Shortage(device, short, placing + reserve + broker))
    for m in _ARENA.finditer(text):
        asked, free = _bytes(m.group(2), m.group(3)), _bytes(m.group(4), m.group(5))
        found.append(Shortage(m.group(1), max(0, asked - free), asked))
    return found


def _fmt(n: float) -> str:
    from .loading import fmt_bytes
    return fmt_bytes(n)


def _cache_bytes(device: torch.device) -> int:
    """torch's cached but unused allocator memory on a CUDA device."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return 0
    try:
        return max(0, torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    except Exception:  # a device this torch cannot query
        return 0


def _comfy_models_on(mm, device: torch.device) -> list:
    return [lm for lm in list(getattr(mm, "current_loaded_models", []))
            if getattr(lm, "device", None) == device and getattr(lm, "model", None) is not None]


def _loaded_bytes(lm) -> int:
    try:
        return int(lm.model_loaded_memory())
    except Exception:
        return 0


def _name(lm) -> str:
    model = getattr(lm.model, "model", None)
    return type(model).__name__ if model is not None else type(lm.model).__name__


def make_room(error: BaseException, what: str) -> Optional[str]:
    """Frees this process's ComfyUI memory on the devices `error` says are
    short. Returns a line saying what was freed (the caller logs it and
    retries once), or None when there is nothing of ours to free (no retry)."""
    wanted = [s for s in shortages(error) if s.device != "cpu"]
    mm = sys.modules.get("comfy.model_management")
    if not wanted or mm is None:
        return None
    plan = []
    for s in wanted:
        target = devices.torch_device_for(s.device)
        held = sum(_loaded_bytes(lm) for lm in _comfy_models_on(mm, target)) + _cache_bytes(target)
        if held > 0:
            plan.append((s, target))
    if not plan:
        return None
    parts = []
    for s, target in plan:
        before = {id(lm): (lm, _loaded_bytes(lm)) for lm in _comfy_models_on(mm, target)}
        cache_before = _cache_bytes(target)
        mm.free_memory(s.needed_free, target)
        mm.soft_empty_cache()
        after = {id(lm): _loaded_bytes(lm) for lm in _comfy_models_on(mm, target)}
        unloaded = [f"{_name(lm)} ({_fmt(size - after.get(key, 0))})"
                    for key, (lm, size) in before.items() if size > after.get(key, 0)]
        cache = max(0, cache_before - _cache_bytes(target))
        parts.append(f"{s.device} short by {_fmt(s.missing)}: ComfyUI unloaded "
                     f"{', '.join(unloaded) or 'nothing'} on {target}"
                     + (f", allocator cache {_fmt(cache)}" if cache else ""))
    return (f"distorch: {what}: the broker was short ({'; '.join(parts)}); freed through "
            f"ComfyUI in this process, retrying the load once")
