"""Device names, the broker's device list, and per-thread device overrides.

The broker names devices ``cuda:N``, ``cpu`` and ``sim:N`` (host-backed
stand-ins for GPUs, used by tests). Inside ComfyUI a ``sim:N`` tensor is a CPU
tensor, so a sim compute device runs on torch's cpu; placement still treats
every sim device as a device of its own (a block on ``sim:1`` is off the
compute device ``sim:0`` and goes through ComfyUI's cast-at-forward path).

ComfyUI picks devices by calling ``comfy.model_management.get_torch_device()``
and friends while it builds a model. ``override_devices`` makes those calls
return the node's choice for the current thread only, and always restores the
previous choice (patches.py installs the functions that read it).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Iterator, List, Optional, Sequence

import torch

logger = logging.getLogger(__name__)

# Slots that patches.py wires to ComfyUI functions.
MODEL_SLOT = "model"                # get_torch_device, vae_device (via it)
TEXT_ENCODER_SLOT = "text_encoder"  # text_encoder_device
INITIAL_SLOT = "initial"            # text_encoder_initial_device, unet_inital_load_device
VAE_SLOT = "vae"                    # vae_device (MultiGPU's advanced checkpoint loaders)
UNET_OFFLOAD_SLOT = "unet_offload"  # unet_offload_device (MultiGPU's pack nodes)

_local = threading.local()


def _stack(slot: str) -> List[torch.device]:
    stacks = getattr(_local, "stacks", None)
    if stacks is None:
        stacks = {}
        _local.stacks = stacks
    return stacks.setdefault(slot, [])


def current_override(slot: str) -> Optional[torch.device]:
    """The innermost override for `slot` on this thread, or None."""
    stack = _stack(slot)
    return stack[-1] if stack else None


@contextlib.contextmanager
def override_devices(model: Optional[torch.device] = None,
                     text_encoder: Optional[torch.device] = None,
                     initial: Optional[torch.device] = None,
                     vae: Optional[torch.device] = None,
                     unet_offload: Optional[torch.device] = None) -> Iterator[None]:
    """Within the block, this thread's ComfyUI device queries answer with the
    given devices (None leaves a slot alone). Nested uses stack; the previous
    answer comes back on exit, also when the block raises."""
    pushed = []
    try:
        for slot, device in ((MODEL_SLOT, model), (TEXT_ENCODER_SLOT, text_encoder),
                             (INITIAL_SLOT, initial), (VAE_SLOT, vae),
                             (UNET_OFFLOAD_SLOT, unet_offload)):
            if device is not None:
                _stack(slot).append(device)
                pushed.append(slot)
        yield
    finally:
        for slot in reversed(pushed):
            _stack(slot).pop()


def is_sim(name: str) -> bool:
    return name.startswith("sim:")


def torch_device_for(name: str) -> torch.device:
    """The torch device that holds a broker device's tensors in this process:
    ``cuda:N`` -> cuda:N; ``cpu`` and ``sim:N`` -> cpu."""
    name = name.strip().lower()
    if name.startswith("cuda"):
        return torch.device(name)
    if name == "cpu" or is_sim(name):
        return torch.device("cpu")
    raise ValueError(f"unknown device {name!r}: expected cuda:N, cpu or sim:N")


def local_device_names() -> List[str]:
    """Devices this process can see without the broker: cpu, then cuda:N."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return names


def broker_device_names(client) -> List[str]:
    """Device names the broker offers, in its order (cpu last), or [] when it
    cannot be asked."""
    if client is None:
        return []
    try:
        devices = client.devices()
    except Exception as e:  # the daemon went away: callers fall back
        logger.debug("distorch: listing broker devices failed: %s", e)
        return []
    names = [getattr(d, "name", d) if not isinstance(d, dict) else d["name"] for d in devices]
    return sorted(names, key=lambda n: (n == "cpu", n))


def default_compute(names: Sequence[str]) -> str:
    """First GPU-like device (cuda, then sim), else cpu."""
    for prefix in ("cuda:", "sim:"):
        for n in names:
            if n.startswith(prefix):
                return n
    return "cpu"


def default_donor(names: Sequence[str], compute: str) -> str:
    return "cpu" if "cpu" in names or not names else next((n for n in names if n != compute), "cpu")
