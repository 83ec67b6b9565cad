"""ComfyUI weight hooks (hook LoRA: CreateHookLora -> SetClipHooks -> CLIPTextEncode,
and the model hooks a sampler applies) on broker models: a hooked weight
becomes this process's own tensor, and the broker weight is never written.

Stock ComfyUI (0.33.0 comfy/model_patcher.py) writes each hooked value INTO the
parameter (comfy.utils.copy_to_param from patch_hook_weight_to_device and
patch_cached_hook_weights) and copies its backup back the same way
(unpatch_hooks). Broker weights are read-only shared mappings, so each of those
writes is a SIGSEGV (and would change every other process's model if it were
not). Here, with the same inputs, outputs and bookkeeping as stock:

  - patch_hook_weight(): the hooked value is computed from the current weight
    exactly as stock does and *replaces* the parameter (a new tensor on the
    weight's own device: the broker placed that weight there and the model's
    memory budget on the compute device does not grow because of a hook);
  - patch_cached_hook_weight(): a cached hooked value (MaxSpeed mode) is put in
    place the same way, as a copy of the cache entry, as stock copies it;
  - hook_backup keeps the replaced Parameter object itself, not a copy, and
    unpatch_hooks() puts that very object back: the model points at broker
    memory again, with no copy made or written.
"""

from __future__ import annotations

import logging
from typing import Optional, Set

import torch

logger = logging.getLogger(__name__)


def patch_hook_weight(patcher, hooks, combined_patches: dict, key: str, original_weights: Optional[dict],
                      memory_counter) -> None:
    """ModelPatcher.patch_hook_weight_to_device without the in-place write."""
    import comfy.float
    import comfy.hooks
    import comfy.lora
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.utils
    if key not in combined_patches:
        return
    weight, set_func, convert_func = comfy.model_patcher.get_key_weight(patcher.model, key)
    if key not in patcher.hook_backup:
        patcher.hook_backup[key] = (weight, weight.device)
    temp = mm.cast_to_device(weight, weight.device, torch.float32, copy=True)
    if convert_func is not None:
        temp = convert_func(temp, inplace=True)
    out = comfy.lora.calculate_weight(combined_patches[key], temp, key, original_weights=original_weights)
    if original_weights is not None:
        original_weights.pop(key, None)
    seed = comfy.utils.string_to_seed(key)
    if set_func is None:
        out = comfy.float.stochastic_rounding(out, weight.dtype, seed=seed)
        comfy.utils.set_attr_param(patcher.model, key, out)
    else:
        set_func(out, inplace_update=False, seed=seed)
    if patcher.hook_mode == comfy.hooks.EnumHookMode.MaxSpeed:
        target = weight.device if memory_counter.use(weight) else patcher.offload_device
        patcher.cached_hook_patches.setdefault(hooks, {})[key] = (out.to(device=target, copy=False),
                                                                  weight.device)


def patch_cached_hook_weight(patcher, cached_weights: dict, key: str, memory_counter) -> None:
    """ModelPatcher.patch_cached_hook_weights without the in-place write."""
    import comfy.utils
    if key not in patcher.hook_backup:
        weight = comfy.utils.get_attr(patcher.model, key)
        patcher.hook_backup[key] = (weight, weight.device)
    value, device = cached_weights[key]
    comfy.utils.set_attr_param(patcher.model, key, value.to(device=device, copy=True))


def _restore(patcher, key: str) -> None:
    import comfy.utils
    original, device = patcher.hook_backup[key]
    if isinstance(original, torch.nn.Parameter) and original.device == device:
        comfy.utils.set_attr(patcher.model, key, original)  # the same object: broker memory again
    else:
        # A stock-made backup (a copy): it replaces the hooked tensor too.
        comfy.utils.set_attr_param(patcher.model, key, original.to(device=device))


def unpatch_hooks(patcher, whitelist_keys_set: Optional[Set[str]] = None) -> None:
    """ModelPatcher.unpatch_hooks: same keys, same current_hooks bookkeeping;
    the pre-hook Parameters go back instead of being copied into."""
    with patcher.use_ejected():
        if len(patcher.hook_backup) == 0:
            patcher.current_hooks = None
            return
        keys = list(patcher.hook_backup)
        if whitelist_keys_set:
            for k in keys:
                if k in whitelist_keys_set:
                    _restore(patcher, k)
                    patcher.hook_backup.pop(k)
        else:
            for k in keys:
                _restore(patcher, k)
            patcher.hook_backup.clear()
            patcher.current_hooks = None
