"""LoRA (weight patches) on broker models: only the weights whose patches
changed are re-patched, and the shared base weight is never written.

ComfyUI keeps a patcher's weight patches in `patcher.patches` ({key: [(strength,
data, strength_model, offset, function), ...]}). Stock ComfyUI unpatches every
weight and patches them all again whenever the patch set changes. Here the
model (shared by all clones of a patcher) records what was applied per key;
`apply` compares and touches only the keys that differ:

  - a weight of a module on the compute device gets a patched copy there (the
    client's own memory), made from the broker base, never from a previous
    patched copy, so one key can be redone alone;
  - a weight of a module off the compute device (cast at forward) gets a
    PatchAtCast function that patches the copy cast_bias_weight makes.

`patched_value` answers ComfyUI's patch_weight_to_device(return_weight=True)
(saving a model: ModelSave, CLIPSave, CheckpointSave; LoRA extraction): the
value stock ComfyUI would return, as a new tensor or the current parameter,
never stored and never written.
"""

from __future__ import annotations

import collections
import logging
from typing import Dict, List, Tuple

import torch

logger = logging.getLogger(__name__)

# Same fields as ComfyUI's own backup records.
Backup = collections.namedtuple("Dimension", ["weight", "inplace_update"])

APPLIED_ATTR = "_distorch_lora"


def _seed(key: str) -> int:
    import comfy.utils
    import comfy.model_patcher
    fn = getattr(comfy.utils, "string_to_seed", None) or getattr(comfy.model_patcher, "string_to_seed")
    return fn(key)


def same_patches(a: List[tuple], b: List[tuple]) -> bool:
    """Equal strengths and offsets, identical patch data objects."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if len(x) != len(y):
            return False
        for u, v in zip(x, y):
            if isinstance(u, (int, float, str, type(None))) and isinstance(v, (int, float, str, type(None))):
                if u != v:
                    return False
            elif isinstance(u, tuple) and isinstance(v, tuple):
                if not same_patches([u], [v]):
                    return False
            elif u is not v:
                return False
    return True


class PatchAtCast:
    """A weight_function entry: applies `patch_list` to the temporary copy that
    ComfyUI's cast-at-forward path hands it."""

    def __init__(self, key: str, patch_list: List[tuple]) -> None:
        self.key = key
        self.patch_list = list(patch_list)

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        import comfy.lora
        import comfy.float
        dtype = weight.dtype
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            out = comfy.lora.calculate_weight(self.patch_list, weight.to(torch.float32), self.key,
                                              intermediate_dtype=torch.float32)
            return comfy.float.stochastic_rounding(out, dtype, seed=_seed(self.key))
        return comfy.lora.calculate_weight(self.patch_list, weight, self.key, intermediate_dtype=dtype)


def _applied(patcher) -> Dict[str, Tuple[List[tuple], str]]:
    model = patcher.model
    applied = getattr(model, APPLIED_ATTR, None)
    if applied is None:
        applied = {}
        setattr(model, APPLIED_ATTR, applied)
    return applied


def _module_of(model: torch.nn.Module, key: str):
    import comfy.utils
    op_key, param = key.rsplit(".", 1) if "." in key else ("", key)
    return (comfy.utils.get_attr(model, op_key) if op_key else model), param


def patch_copy(patcher, key: str, device: torch.device) -> int:
    """Patched copy of `key` on `device` from the base weight; returns bytes."""
    import comfy.float
    import comfy.lora
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.utils
    weight, set_func, convert_func = comfy.model_patcher.get_key_weight(patcher.model, key)
    if key not in patcher.backup:
        patcher.backup[key] = Backup(weight, False)
    base = patcher.backup[key].weight
    temp = mm.cast_to_device(base, device, mm.lora_compute_dtype(device), copy=True)
    if convert_func is not None:
        temp = convert_func(temp, inplace=True)
    out = comfy.lora.calculate_weight(patcher.patches[key], temp, key)
    if set_func is None:
        out = comfy.float.stochastic_rounding(out, base.dtype, seed=_seed(key))
        comfy.utils.set_attr_param(patcher.model, key, out)
    else:
        set_func(out, inplace_update=False, seed=_seed(key))
    return out.numel() * out.element_size()


def patched_value(patcher, key: str, device_to=None, force_cast: bool = False):
    """What ComfyUI 0.33.0's patch_weight_to_device(key, device_to,
    return_weight=True, force_cast) returns for this patcher. Stock computes
    the current parameter plus the patcher's patches; a module it patched in
    place (comfy_patched_weights) is saved from the parameter as is. Here a
    key with a patched copy of exactly these patches is that parameter, and
    one with other patches starts again from the broker base."""
    import comfy.float
    import comfy.lora
    import comfy.model_management as mm
    import comfy.model_patcher
    weight, set_func, convert_func = comfy.model_patcher.get_key_weight(patcher.model, key)
    applied = _applied(patcher).get(key)
    if applied is not None and applied[1] == "copy":
        if same_patches(applied[0], patcher.patches.get(key, [])):
            return weight
        weight = patcher.backup[key].weight
    if key not in patcher.patches and not force_cast:
        return weight
    temp_dtype = mm.lora_compute_dtype(device_to) if key in patcher.patches else None
    if device_to is not None:
        temp = mm.cast_to_device(weight, device_to, temp_dtype, copy=True)
    else:
        temp = weight.to(dtype=temp_dtype or weight.dtype, copy=True)
    if convert_func is not None:
        temp = convert_func(temp, inplace=True)
    out = comfy.lora.calculate_weight(patcher.patches[key], temp, key) if key in patcher.patches else temp
    if set_func is None:
        if key in patcher.patches:
            out = comfy.float.stochastic_rounding(out, weight.dtype, seed=_seed(key))
        return out
    return set_func(out, inplace_update=False, seed=_seed(key), return_weight=True)


def patch_key(patcher, key: str, device: torch.device) -> int:
    """A patched copy of `key` outside `apply` (a caller of ComfyUI's
    patch_weight_to_device), recorded so that restore() undoes it."""
    applied = _applied(patcher)
    if key in applied:
        restore(patcher, key)
    new_bytes = patch_copy(patcher, key, device)
    applied[key] = (list(patcher.patches[key]), "copy")
    return new_bytes


def is_gguf_quantized(t: torch.Tensor) -> bool:
    kind = getattr(t, "tensor_type", None)
    return kind is not None and getattr(kind, "name", str(kind)) not in ("F32", "F16")


def patch_gguf(patcher, key: str) -> None:
    """ComfyUI-GGUF applies patches while dequantising: give the key a new
    wrapper (same broker bytes) that carries them."""
    import comfy.model_patcher
    import comfy.utils
    weight, _, _ = comfy.model_patcher.get_key_weight(patcher.model, key)
    if key not in patcher.backup:
        patcher.backup[key] = Backup(weight, False)
    base = patcher.backup[key].weight
    wrapped = type(base)(base, tensor_type=base.tensor_type,
                         tensor_shape=getattr(base, "tensor_shape", base.shape))
    wrapped.patches = [(list(patcher.patches[key]), key)]
    comfy.utils.set_attr_param(patcher.model, key, wrapped)


def _set_cast_patch(patcher, key: str) -> None:
    module, param = _module_of(patcher.model, key)
    attr = param + "_function"
    kept = [f for f in getattr(module, attr, []) if not (isinstance(f, PatchAtCast) and f.key == key)]
    setattr(module, attr, kept + [PatchAtCast(key, patcher.patches[key])])


def restore(patcher, key: str) -> None:
    """Back to the broker base for `key`."""
    import comfy.utils
    entry = _applied(patcher).pop(key, None)
    if entry is None:
        return
    if entry[1] in ("copy", "gguf"):
        backup = patcher.backup.pop(key, None)
        if backup is not None:
            comfy.utils.set_attr_param(patcher.model, key, backup.weight)
    else:
        module, param = _module_of(patcher.model, key)
        attr = param + "_function"
        setattr(module, attr, [f for f in getattr(module, attr, [])
                               if not (isinstance(f, PatchAtCast) and f.key == key)])


def restore_all(patcher) -> int:
    keys = list(_applied(patcher))
    for key in keys:
        restore(patcher, key)
    return len(keys)


def apply(patcher, device: torch.device, cast_at_forward) -> Tuple[int, int, int, int]:
    """Brings the model's weights to `patcher.patches`. `cast_at_forward(key)`
    says whether the key's module is cast at forward. Returns (re-patched,
    restored, unchanged, bytes of new patched copies)."""
    applied = _applied(patcher)
    wanted = {k: v for k, v in patcher.patches.items() if v}
    restored = repatched = unchanged = new_bytes = 0
    for key in [k for k in applied if k not in wanted]:
        restore(patcher, key)
        restored += 1
    for key, plist in wanted.items():
        previous = applied.get(key)
        if previous is not None and same_patches(previous[0], plist):
            unchanged += 1
            continue
        if previous is not None:
            restore(patcher, key)
        module, param = _module_of(patcher.model, key)
        if is_gguf_quantized(getattr(module, param)) or is_gguf_quantized(
                getattr(patcher.backup.get(key), "weight", torch.empty(0))):
            patch_gguf(patcher, key)
            mode = "gguf"
        elif cast_at_forward(key):
            _set_cast_patch(patcher, key)
            mode = "cast"
        else:
            new_bytes += patch_copy(patcher, key, device)
            mode = "copy"
        applied[key] = (list(plist), mode)
        repatched += 1
    if repatched or restored:
        logger.info("distorch: weight patches on %s: %d re-patched, %d restored to the shared "
                    "base, %d unchanged", type(patcher.model).__name__, repatched, restored,
                    unchanged)
    return repatched, restored, unchanged, new_bytes


def release_copies(patcher, want: float, castable) -> int:
    """Turns patched copies into cast-at-forward patches until `want` bytes of
    the compute device are free again; returns the bytes freed."""
    freed = 0
    applied = _applied(patcher)
    for key, (plist, mode) in list(applied.items()):
        if freed >= want:
            break
        if mode != "copy" or not castable(key):
            continue
        weight = _module_of(patcher.model, key)
        current = getattr(weight[0], weight[1])
        size = current.numel() * current.element_size()
        restore(patcher, key)
        _set_cast_patch(patcher, key)
        module = weight[0]
        if not getattr(module, "_distorch_cast", False):
            module.prev_comfy_cast_weights = module.comfy_cast_weights
            module.comfy_cast_weights = True
            module._distorch_cast = True
        applied[key] = (list(plist), "cast")
        freed += size
    return freed
