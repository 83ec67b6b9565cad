"""The ComfyUI functions distorch replaces: one small, reversible patch each.

Every patch first checks that the symbol it replaces still has the shape this
code was written against (ComfyUI commit 3cd7b32f, v0.8.0, and the later
DynamicVRAM releases). When it does not, the patch is left out and one error
names the symbol and the ComfyUI version; the other patches still go in.

    get_torch_device, text_encoder_device,        per-thread device choice
    text_encoder_initial_device,                  (devices.override_devices)
    unet_inital_load_device
    unload_all_models                             selective: keep_loaded models stay
    soft_empty_cache                              every device + tell the broker

Each patch function returns an undo callable (or None when it was left out).
"""

from __future__ import annotations

import inspect
import logging
from types import ModuleType
from typing import Callable, Iterable, List, Optional, Protocol, Sequence

import torch

from . import devices

logger = logging.getLogger(__name__)

Undo = Callable[[], None]


def comfy_version() -> str:
    """ComfyUI's version string, or 'unknown' (older trees have no file)."""
    try:
        import comfyui_version  # ComfyUI's root module
        return str(getattr(comfyui_version, "__version__", "unknown"))
    except Exception:
        return "unknown"


def signature_problem(func: object, required: Sequence[str] = (),
                      optional: Sequence[str] = (), max_required: Optional[int] = None
                      ) -> Optional[str]:
    """None when `func` is callable with parameters named `required` (in that
    order, first) and accepts `optional` ones; otherwise what is different."""
    if not callable(func):
        return f"expected a function, found {type(func).__name__}"
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return "its signature cannot be read"
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    has_var_kw = any(p.kind == p.VAR_KEYWORD for p in params)
    names = [p.name for p in positional]
    if names[:len(required)] != list(required):
        return f"expected parameters ({', '.join(required)}), found ({', '.join(names)})"
    for name in optional:
        if name not in sig.parameters and not has_var_kw:
            return f"expected a parameter '{name}', found ({', '.join(names)})"
    if max_required is not None:
        needed = [p.name for p in positional if p.default is p.empty]
        if len(needed) > max_required:
            return (f"expected at most {max_required} required parameters, found "
                    f"({', '.join(needed)})")
    return None


_reported: set = set()


def report_left_out(symbol: str, problem: str, consequence: str) -> None:
    """One error per symbol and process."""
    if symbol in _reported:
        return
    _reported.add(symbol)
    logger.error("distorch: not patching %s on ComfyUI %s: %s. %s Please report this "
                 "with your ComfyUI version.", symbol, comfy_version(), problem, consequence)


def _replace(module: ModuleType, name: str, replacement: Callable) -> Undo:
    original = getattr(module, name)
    replacement.__wrapped__ = original  # type: ignore[attr-defined]
    replacement.__distorch_patch__ = True  # type: ignore[attr-defined]
    setattr(module, name, replacement)

    def undo() -> None:
        if getattr(module, name) is replacement:
            setattr(module, name, original)
    return undo


# ---------------------------------------------------------------- device choice

def patch_device_function(mm: ModuleType, name: str, slot: str,
                          required: Sequence[str] = ()) -> Optional[Undo]:
    """`mm.<name>` answers with this thread's override for `slot` when one is
    set (devices.override_devices), else as before."""
    original = getattr(mm, name, None)
    problem = signature_problem(original, required=required,
                                max_required=len(required)) if original is not None \
        else "the function does not exist"
    if problem:
        report_left_out(f"comfy.model_management.{name}", problem,
                        "Device choice on distorch nodes falls back to ComfyUI's default device.")
        return None

    def device_function(*args, **kwargs):
        device = devices.current_override(slot)
        if device is not None:
            return device
        return original(*args, **kwargs)
    device_function.__name__ = name
    return _replace(mm, name, device_function)


def patch_device_choice(mm: ModuleType) -> List[Undo]:
    undos = [
        patch_device_function(mm, "get_torch_device", devices.MODEL_SLOT),
        patch_device_function(mm, "text_encoder_device", devices.TEXT_ENCODER_SLOT),
        # Build models on the initial device (cpu) while distorch adopts broker
        # tensors, so ComfyUI never fills a GPU with weights it then discards.
        patch_device_function(mm, "text_encoder_initial_device", devices.INITIAL_SLOT,
                              required=("load_device", "offload_device")),
        patch_device_function(mm, "unet_inital_load_device", devices.INITIAL_SLOT,
                              required=("parameters", "dtype")),
    ]
    return [u for u in undos if u is not None]


# ---------------------------------------------------------------- /free

class KeepPolicy(Protocol):
    """What the selective unload needs to know about broker models."""

    def is_kept(self, model_patcher: object) -> bool:
        """True for a broker model whose lease has keep_loaded=true."""

    def eject_unflagged(self) -> int:
        """Releases this process's keep_loaded=false leases (DESIGN.md §6) and
        drops their tensors; returns how many models went. Must do nothing at
        all when there are none."""


def patch_unload_all_models(mm: ModuleType, policy: KeepPolicy) -> Optional[Undo]:
    """ComfyUI's unload_all_models (the /free 'unload_models' step) unloads
    every model on the default device. Replaced by: broker models with
    keep_loaded=true stay loaded; every other model is unloaded through
    ComfyUI's own free_memory, per device it sits on; then the broker releases
    the unflagged leases. Nothing to unload = nothing called at all."""
    problem = signature_problem(getattr(mm, "unload_all_models", None), max_required=0) \
        or signature_problem(getattr(mm, "free_memory", None),
                             required=("memory_required", "device"), optional=("keep_loaded",))
    if problem is None and not isinstance(getattr(mm, "current_loaded_models", None), list):
        problem = "comfy.model_management.current_loaded_models is not a list"
    if problem:
        report_left_out("comfy.model_management.unload_all_models", problem,
                        "/free unloads every model; the keep_loaded flags are ignored.")
        return None

    def unload_all_models() -> None:
        kept, devices_to_free = [], []
        for loaded in list(mm.current_loaded_models):
            patcher = loaded.model
            if patcher is None:
                continue
            if policy.is_kept(patcher):
                kept.append(loaded)
            elif loaded.device not in devices_to_free:
                devices_to_free.append(loaded.device)
        for device in devices_to_free:
            mm.free_memory(1e30, device, keep_loaded=kept)
        ejected = policy.eject_unflagged()
        if devices_to_free or ejected or kept:
            logger.info("distorch: unload_all_models: %d model(s) kept loaded (keep_loaded), "
                        "unloaded on %s, %d broker model(s) released",
                        len(kept), ", ".join(str(d) for d in devices_to_free) or "no device",
                        ejected)
    return _replace(mm, "unload_all_models", unload_all_models)


def cuda_devices_in_use(extra: Iterable[torch.device] = ()) -> List[int]:
    """CUDA device indices this process holds allocator memory on, plus `extra`."""
    if not torch.cuda.is_available():
        return []
    used = set()
    for i in range(torch.cuda.device_count()):
        try:
            if torch.cuda.memory_reserved(i) > 0:
                used.add(i)
        except Exception:
            continue
    for device in extra:
        if device.type == "cuda":
            used.add(device.index or 0)
    return sorted(used)


def patch_soft_empty_cache(mm: ModuleType, devices_in_use: Callable[[], List[int]],
                           notify_broker: Callable[[], None]) -> Optional[Undo]:
    """After ComfyUI's own soft_empty_cache (the current device), empty the
    allocator cache of every other CUDA device this process uses, then tell the
    broker (which trims its staging pools)."""
    original = getattr(mm, "soft_empty_cache", None)
    problem = signature_problem(original, optional=("force",), max_required=0)
    if problem:
        report_left_out("comfy.model_management.soft_empty_cache", problem,
                        "Only ComfyUI's current device is emptied, and the broker is not told.")
        return None

    def soft_empty_cache(force: bool = False) -> None:
        original(force)
        if torch.cuda.is_available():
            current = torch.cuda.current_device()
            for index in devices_in_use():
                if index != current:
                    with torch.cuda.device(index):
                        torch.cuda.empty_cache()
        try:
            notify_broker()
        except Exception as e:  # never let cache trimming break ComfyUI
            logger.debug("distorch: broker soft_empty_cache failed: %r", e)
    return _replace(mm, "soft_empty_cache", soft_empty_cache)


# ---------------------------------------------------------------- file loading

def patch_load_torch_file(utils: ModuleType, intercept: Callable) -> Optional[Undo]:
    """comfy.utils.load_torch_file asks `intercept(path, return_metadata)`
    first; a non-None answer is returned instead of reading the file. The
    interceptor answers only inside a distorch loader node (loading.py)."""
    original = getattr(utils, "load_torch_file", None)
    problem = signature_problem(original, required=("ckpt",))
    if problem:
        report_left_out("comfy.utils.load_torch_file", problem,
                        "distorch loader nodes load models the stock way (no sharing).")
        return None

    def load_torch_file(ckpt, *args, **kwargs):
        return_metadata = kwargs.get("return_metadata", args[2] if len(args) > 2 else False)
        answer = intercept(ckpt, bool(return_metadata))
        if answer is not None:
            return answer
        return original(ckpt, *args, **kwargs)
    return _replace(utils, "load_torch_file", load_torch_file)


def is_patched(func: object) -> bool:
    return bool(getattr(func, "__distorch_patch__", False))
