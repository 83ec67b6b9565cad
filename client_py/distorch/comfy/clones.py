"""Clones of a DistorchModelPatcher under ComfyUI's clone API.

ComfyUI 0.33.0 (comfy/model_patcher.py) has two kinds of clone:

  - ModelPatcher.clone(disable_dynamic=False, model_override=None,
    force_deepcopy=False): normally a new patcher on the same torch model.
    That stays a DistorchModelPatcher sharing the broker weights (a
    DistorchModelPatcher is never dynamic, so disable_dynamic changes nothing).
  - deep clones: clone(force_deepcopy=True) (e.g. comfy_extras/nodes_train.py,
    which then trains the clone's weights) and deepclone_multigpu (MultiGPU
    work units, Select Model/CLIP/VAE Device) rebuild the model from the
    loader's cached_patcher_init factory, i.e. reload the file the stock way.
    That clone is this process's private copy: it becomes ComfyUI's classic
    ModelPatcher, so nothing distorch does (shared-memory rules, accounting)
    applies to it, and the broker's copy is never written. The reload is
    asked for without DynamicVRAM (disable_dynamic=True), because the clone's
    class is the classic one.

Thread contract: as ComfyUI's clone (called on the prompt thread).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from typing import Callable, Iterator

logger = logging.getLogger(__name__)

PLACEMENT_ATTR = "_distorch_placement"  # patcher.PLACEMENT_ATTR (no import cycle)


def _accepts_disable_dynamic(factory: Callable) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "disable_dynamic" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


@contextlib.contextmanager
def classic_reload(patcher) -> Iterator[None]:
    """While ComfyUI deep-clones `patcher`: its reload factory builds the
    classic (non-DynamicVRAM) kind of model."""
    init = getattr(patcher, "cached_patcher_init", None)
    if not init:
        yield
        return
    factory = init[0]

    def reload_classic(*args, **kwargs):
        if _accepts_disable_dynamic(factory):
            kwargs.setdefault("disable_dynamic", True)
        return factory(*args, **kwargs)
    reload_classic.distorch_original = init  # type: ignore[attr-defined]
    patcher.cached_patcher_init = (reload_classic,) + tuple(init[1:])
    try:
        yield
    finally:
        patcher.cached_patcher_init = init


def _original_init(init):
    return getattr(init[0], "distorch_original", init) if init else init


def _describe(patcher) -> str:
    init = _original_init(getattr(patcher, "cached_patcher_init", None))
    for arg in (init[1] if init and len(init) > 1 else ()):
        if isinstance(arg, str):
            return os.path.basename(arg)
        if isinstance(arg, (list, tuple)) and arg and isinstance(arg[0], str):
            return ", ".join(os.path.basename(a) for a in arg)
    return type(patcher.model).__name__


def finish(source, clone, classic: type, why: str):
    """`clone` just came from ComfyUI's clone of `source`. On the broker model:
    returned as is. On another model (a deep clone): made classic."""
    clone.cached_patcher_init = _original_init(getattr(clone, "cached_patcher_init", None))
    if clone.model is source.model or hasattr(clone.model, PLACEMENT_ATTR):
        return clone
    clone.__class__ = classic
    clone.size = 0  # source's size counted only its own bytes (accounting.py)
    log = logger.info if why else logger.debug
    log("distorch: %s of %s: ComfyUI loaded it again the stock way, as this process's own "
        "copy (not shared through distorchd; the shared copy is untouched)",
        why or "a clone on another model", _describe(source))
    return clone


def clone(source, base_clone: Callable, classic: type, *args, **kwargs):
    """DistorchModelPatcher.clone: ComfyUI's clone, then `finish`."""
    deep = bool(kwargs.get("force_deepcopy", False)) and kwargs.get("model_override") is None
    if deep:
        why = "a deep copy (clone(force_deepcopy=True))"
    else:
        why = getattr(source, "_distorch_deepclone_why", "")
    with classic_reload(source) if deep else contextlib.nullcontext():
        n = base_clone(*args, **kwargs)
    return finish(source, n, classic, why)


def deepclone_multigpu(source, base_deepclone: Callable, new_load_device=None, *args, **kwargs):
    """DistorchModelPatcher.deepclone_multigpu: ComfyUI's, with a classic
    reload (its inner clone() call runs `finish`)."""
    target = new_load_device if new_load_device is not None else source.load_device
    source._distorch_deepclone_why = f"a multi-GPU deep clone for {target}"
    try:
        with classic_reload(source):
            return base_deepclone(new_load_device, *args, **kwargs)
    finally:
        del source._distorch_deepclone_why
