"""ComfyUI's DynamicVRAM (comfy-aimdo), on by default on recent NVIDIA installs.

What DynamicVRAM does with a model (ComfyUI 0.33.0, comfy/model_patcher.py
ModelPatcherDynamic, comfy/ops.py cast_modules_with_vbar): it keeps the weights
where the file put them, copies host weights into pinned host buffers of its
own and streams them into a VRAM cache of its own at forward time. For a
broker model that would be per-process copies of memory distorchd shares, and
it would second-guess the placement distorchd already made. So:

  - while a distorch node builds a model, ModelPatcherDynamic hands out
    ComfyUI's classic ModelPatcher instead, as ComfyUI itself does for a CPU
    load device (ModelPatcherDynamic.__new__). The loaders then call
    load_state_dict(assign=patcher.is_dynamic()) = assign=False, the classic
    load that adoption (loading.py) is written for;
  - with DynamicVRAM on, comfy.ops Linear/Embedding skip
    Module._load_from_state_dict and load through
    disable_weight_init._lazy_load_from_state_dict, which clones every tensor
    when not assigning; that loader is hooked so adoption still makes the
    broker tensor the parameter (Adoption.adopt_lazy);
  - a patcher that is DynamicVRAM anyway (a path that bypassed the hook) is
    turned into the classic kind after loading (patcher.adopt_patcher).

DynamicVRAM keeps managing every other model. This is said once, in the log,
when the first distorch model is built while DynamicVRAM is on.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable, List, Optional

from . import patches

logger = logging.getLogger(__name__)

_told = False

MESSAGE = (
    "distorch: ComfyUI's DynamicVRAM (comfy-aimdo) is on. Models loaded through distorch "
    "nodes are placed by distorchd (compute_device / virtual_vram_gb / "
    "expert_mode_allocations), built with ComfyUI's classic ModelPatcher and run on its "
    "cast-at-forward path, so DynamicVRAM does not manage them (it would copy the shared "
    "weights into buffers of its own); it still manages every other model. Nothing to "
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


def install(active_adoption: Callable[[], Optional[object]]) -> List[patches.Undo]:
    """Both hooks; `active_adoption` answers the adoption running on this
    thread (loading.active). Each hook is inert on threads not adopting."""
    undos: List[patches.Undo] = []
    try:
        import comfy.model_patcher as model_patcher
        undo = patch_model_patcher_dynamic(model_patcher, lambda: active_adoption() is not None)
        if undo:
            undos.append(undo)
    except ImportError:
        pass
    try:
        import comfy.ops as ops
        undo = patch_lazy_load(ops, active_adoption)
        if undo:
            undos.append(undo)
    except ImportError:
        pass
    return undos


def _function(raw: object) -> object:
    return raw.__func__ if isinstance(raw, staticmethod) else raw


def patch_model_patcher_dynamic(model_patcher, adopting: Callable[[], bool]
                                ) -> Optional[patches.Undo]:
    """ModelPatcherDynamic(...) returns a classic ModelPatcher while this
    thread adopts (ComfyUI 0.33.0 comfy/model_patcher.py: its __new__ already
    does that for CPU load devices). None when this ComfyUI has no
    ModelPatcherDynamic (nothing to do) or its shape changed (reported)."""
    cls = getattr(model_patcher, "ModelPatcherDynamic", None)
    raw = vars(cls).get("__new__") if isinstance(cls, type) else None
    if raw is None:
        return None
    original = _function(raw)
    symbol = "comfy.model_patcher.ModelPatcherDynamic.__new__"
    problem = patches.signature_problem(original, required=(
        "cls", "model", "load_device", "offload_device", "size", "weight_inplace_update"))
    if problem:
        patches.report_left_out(symbol, problem, "distorch models are built for DynamicVRAM and "
                                "switched to the classic patcher after loading.")
        return None

    def __new__(klass, model=None, load_device=None, offload_device=None, size=0,
                weight_inplace_update=False):
        if adopting():
            tell_once()
            return model_patcher.ModelPatcher(model, load_device, offload_device, size,
                                              weight_inplace_update)
        return original(klass, model, load_device, offload_device, size, weight_inplace_update)
    cls.__new__ = staticmethod(__new__)
    return lambda: setattr(cls, "__new__", raw)


def patch_lazy_load(ops, active_adoption: Callable[[], Optional[object]]
                    ) -> Optional[patches.Undo]:
    """Routes comfy.ops.disable_weight_init._lazy_load_from_state_dict
    (ComfyUI 0.33.0 comfy/ops.py) through Adoption.adopt_lazy on adopting
    threads. None when this ComfyUI has no lazy loader (before DynamicVRAM)."""
    holder = getattr(ops, "disable_weight_init", None)
    raw = vars(holder).get("_lazy_load_from_state_dict") if isinstance(holder, type) else None
    if raw is None:
        return None
    original = _function(raw)
    symbol = "comfy.ops.disable_weight_init._lazy_load_from_state_dict"
    problem = patches.signature_problem(original, required=(
        "module", "state_dict", "prefix", "local_metadata", "missing_keys", "unexpected_keys",
        "weight_shape"))
    if problem:
        patches.report_left_out(symbol, problem, "With DynamicVRAM on, Linear and Embedding "
                                "weights of distorch models are private copies (not shared).")
        return None

    def _lazy_load_from_state_dict(module, state_dict, prefix, local_metadata, *args, **kwargs):
        adoption = active_adoption()
        if adoption is not None and getattr(adoption, "mode", "") == "real":
            local_metadata = adoption.adopt_lazy(module, state_dict, prefix, local_metadata)
        return original(module, state_dict, prefix, local_metadata, *args, **kwargs)
    holder._lazy_load_from_state_dict = staticmethod(_lazy_load_from_state_dict)
    return lambda: setattr(holder, "_lazy_load_from_state_dict", raw)
