"""DistorchModelPatcher: ComfyUI's ModelPatcher for models whose weights sit
where the broker placed them.

ComfyUI's loaders return their usual ModelPatcher; `adopt_patcher` switches
its class to a subclass that never moves or copies broker weights:

  - a module whose weights are all on the compute device runs as is;
  - a module with a weight off the compute device (another GPU, host RAM, or
    another sim: device) is marked for ComfyUI's cast-at-forward path
    (comfy_cast_weights, as ComfyUI does for its own low-VRAM mode);
  - a module ComfyUI cannot stream that still ended up off the compute device
    (the planner was not told) gets a private copy there, with a warning;
  - LoRA goes through lora.py (only changed keys, base never written);
  - weight hooks (hook LoRA) go through weight_hooks.py: hooked weights are
    this process's own tensors, unpatching puts the broker Parameters back;
  - no ComfyUI path writes into a parameter in place: patch_weight_to_device
    ignores inplace_update, and return_weight (saving a model) computes the
    value without storing it;
  - unloading drops patched copies and cast flags, never the broker weights.

Placement facts live on the shared torch model (`_distorch_placement`) so
every clone of a patcher sees them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import torch

from . import accounting, clones, lora, weight_hooks

logger = logging.getLogger(__name__)

PLACEMENT_ATTR = "_distorch_placement"


@dataclass
class Placement:
    compute: str                                  # broker device name
    devices: Dict[str, Optional[str]]             # param key -> broker device; None = own
    entry: object = None                          # registry.Entry
    copied_unstreamable: Dict[str, torch.Tensor] = field(default_factory=dict)

    def off_compute(self, key: str, tensor: torch.Tensor, device_to: torch.device) -> bool:
        where = self.devices.get(key)
        if where is None:
            return tensor.device != device_to
        return where != self.compute


_classes: Dict[type, type] = {}


def _on_load_key() -> str:
    try:
        from comfy.patcher_extension import CallbacksMP
        return CallbacksMP.ON_LOAD
    except (ImportError, AttributeError):
        return "on_load"


def patcher_class(base: type) -> type:
    """The DistorchModelPatcher subclass of ComfyUI's `base` ModelPatcher."""
    cls = _classes.get(base)
    if cls is not None:
        return cls

    class DistorchModelPatcher(base):  # type: ignore[misc, valid-type]
        distorch_managed = True

        def is_dynamic(self) -> bool:  # DynamicVRAM: this patcher is the classic kind
            return False

        def current_loaded_device(self):
            return self.load_device

        def model_size(self) -> int:
            # ComfyUI sizes loads, evictions and pin budgets by this; broker
            # memory is resident already and never ComfyUI's to move or pin,
            # so only this process's own tensors count (accounting.py).
            return accounting.managed_bytes(self.model)

        def loaded_size(self) -> int:
            # The broker already holds the weights where they run: ComfyUI
            # has nothing more to load for them.
            return self.model_size()

        def clone(self, *args, **kwargs):
            # A clone shares the broker model; a deep clone (force_deepcopy)
            # is a private stock copy and becomes classic (clones.py).
            return clones.clone(self, super().clone, base, *args, **kwargs)

        if hasattr(base, "deepclone_multigpu"):  # ComfyUI 0.33: MultiGPU work units
            def deepclone_multigpu(self, new_load_device=None, *args, **kwargs):
                return clones.deepclone_multigpu(self, super().deepclone_multigpu, new_load_device,
                                                 *args, **kwargs)

        def _placement(self) -> Placement:
            return getattr(self.model, PLACEMENT_ATTR)

        def _cast_at_forward(self, key: str) -> bool:
            module, _ = lora._module_of(self.model, key)
            return bool(getattr(module, "_distorch_cast", False))

        def _apply_placement(self, device_to: torch.device) -> None:
            placement = self._placement()
            import comfy.utils
            cast_any = False
            # set_model_compute_dtype (ComfyUI 0.33: CLIP, training): every
            # comfy.ops module casts at forward, as ComfyUI's own load does.
            force_cast = bool(getattr(self, "force_cast_weights", False))
            for name, module in self.model.named_modules():
                own = [(p, t) for p, t in module._parameters.items() if t is not None]
                if not own:
                    continue
                keys = [(f"{name}.{p}" if name else p, p, t) for p, t in own]
                off = [k for k, _, t in keys if placement.off_compute(k, t, device_to)]
                if not off and not (force_cast and hasattr(module, "comfy_cast_weights")):
                    continue
                if hasattr(module, "comfy_cast_weights"):
                    if not getattr(module, "_distorch_cast", False):
                        module.prev_comfy_cast_weights = module.comfy_cast_weights
                        module.comfy_cast_weights = True
                        module._distorch_cast = True
                    cast_any = True
                    continue
                for key, _, t in keys:
                    if t.device != device_to and key not in placement.copied_unstreamable:
                        placement.copied_unstreamable[key] = t
                        comfy.utils.set_attr_param(self.model, key, t.to(device_to, copy=True))
            if placement.copied_unstreamable and not getattr(self.model, "_distorch_warned", False):
                self.model._distorch_warned = True
                size = sum(t.numel() * t.element_size() for t in placement.copied_unstreamable.values())
                logger.warning("distorch: %d tensor(s) (%d bytes) in modules ComfyUI cannot stream "
                               "were placed off the compute device; using private copies on %s",
                               len(placement.copied_unstreamable), size, device_to)
            if cast_any:
                self.model.model_lowvram = True

        def _undo_placement(self) -> None:
            import comfy.utils
            placement = self._placement()
            for key, original in list(placement.copied_unstreamable.items()):
                comfy.utils.set_attr_param(self.model, key, original)
            placement.copied_unstreamable.clear()
            for module in self.model.modules():
                if getattr(module, "_distorch_cast", False):
                    if hasattr(module, "prev_comfy_cast_weights"):
                        module.comfy_cast_weights = module.prev_comfy_cast_weights
                        del module.prev_comfy_cast_weights
                    del module._distorch_cast

        def _apply(self, device_to: torch.device) -> int:
            if self.model.current_weight_patches_uuid != self.patches_uuid:
                # As stock: hooks come off before weights change (a hook
                # copy must never become some key's LoRA base), and
                # apply_hooks puts them back on the new weights.
                self.unpatch_hooks()
            self._apply_placement(device_to)
            _, _, _, new_bytes = lora.apply(self, device_to, self._cast_at_forward)
            self.model.device = device_to
            self.model.model_loaded_weight_memory = self.model_size()
            self.model.current_weight_patches_uuid = self.patches_uuid
            return new_bytes

        def load(self, device_to=None, lowvram_model_memory=0, force_patch_weights=False,
                 full_load=False, **kwargs):
            device_to = device_to or self.load_device
            with self.use_ejected():
                self.unpatch_hooks()
                self._apply(device_to)
                for callback in self.get_all_callbacks(_on_load_key()):
                    callback(self, device_to, lowvram_model_memory, force_patch_weights, full_load)
                self.apply_hooks(self.forced_hooks, force_apply=True)

        def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
            with self.use_ejected(skip_and_inject_on_exit_only=True):
                self.patch_model(load_weights=False)
                used = self._apply(device_to)
                self.apply_hooks(self.forced_hooks, force_apply=True)
                return used

        def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False):
            def castable(key: str) -> bool:
                module, _ = lora._module_of(self.model, key)
                return hasattr(module, "comfy_cast_weights")
            with self.use_ejected():
                if self.hook_backup:
                    self.unpatch_hooks()  # stock does too before it restores backups
                freed = lora.release_copies(self, memory_to_free, castable)
            if freed:
                self.model.model_lowvram = True
                logger.info("distorch: freed %d bytes of patched copies on %s", freed, self.load_device)
            return freed

        def unpatch_model(self, device_to=None, unpatch_weights=True):
            if unpatch_weights:
                self.unpatch_hooks()  # first: a hook may sit on a LoRA copy
                lora.restore_all(self)
                import comfy.utils
                for key, backup in list(self.backup.items()):
                    # Not ours (stock made it): restore by replacing, never
                    # by copying into the parameter (inplace_update).
                    comfy.utils.set_attr_param(self.model, key, backup.weight)
                    del self.backup[key]
                self._undo_placement()
            # device_to=None: ComfyUI must not move broker weights anywhere.
            result = super().unpatch_model(None, unpatch_weights=unpatch_weights)
            if unpatch_weights:
                self.model.model_loaded_weight_memory = 0
            return result

        # ComfyUI 0.33.0's signature. inplace_update (and the patcher's
        # weight_inplace_update) are ignored: a patched key always becomes
        # a copy. force_cast of an unpatched key (DynamicVRAM's cast of a
        # weight to the compute device) keeps the broker's placement.
        def patch_weight_to_device(self, key, device_to=None, inplace_update=False, return_weight=False,
                                   force_cast=False):
            if return_weight:
                return lora.patched_value(self, key, device_to, force_cast)
            if not self.patches.get(key):
                import comfy.model_patcher
                return comfy.model_patcher.get_key_weight(self.model, key)[0]
            if key in self.hook_backup:
                self.unpatch_hooks()
            lora.patch_key(self, key, device_to or self.load_device)
            return None

        def patch_hook_weight_to_device(self, hooks, combined_patches, key, original_weights, memory_counter):
            weight_hooks.patch_hook_weight(self, hooks, combined_patches, key, original_weights, memory_counter)

        def patch_cached_hook_weights(self, cached_weights, key, memory_counter):
            weight_hooks.patch_cached_hook_weight(self, cached_weights, key, memory_counter)

        def unpatch_hooks(self, whitelist_keys_set=None):
            weight_hooks.unpatch_hooks(self, whitelist_keys_set)

        def pin_weight_to_device(self, key):
            pass  # broker memory: pinning is the client library's business

        def unpin_weight(self, key):
            pass

        def unpin_all_weights(self):
            pass

    DistorchModelPatcher.__qualname__ = DistorchModelPatcher.__name__
    _classes[base] = DistorchModelPatcher
    return DistorchModelPatcher


def is_broker_patcher(patcher: object) -> bool:
    return bool(getattr(type(patcher), "distorch_managed", False))


def adopt_patcher(patcher, placement: Placement, on_demote: Callable[[object], None]):
    """Turns ComfyUI's patcher (classic or DynamicVRAM) into a
    DistorchModelPatcher in place."""
    import comfy.model_patcher
    if is_broker_patcher(patcher):
        return patcher
    if getattr(patcher, "is_dynamic", lambda: False)():
        on_demote(patcher)
        dynamic = getattr(patcher.model, "dynamic_patchers", None)
        if isinstance(dynamic, set):
            dynamic.discard(id(patcher))
    setattr(patcher.model, PLACEMENT_ATTR, placement)
    patcher.__class__ = patcher_class(comfy.model_patcher.ModelPatcher)
    patcher.weight_inplace_update = False  # never write into shared memory
    for module in patcher.model.modules():
        # Nothing here is patched in place, so ComfyUI's save path must ask
        # patch_weight_to_device(return_weight=True) for every comfy.ops weight.
        if hasattr(module, "comfy_patched_weights"):
            del module.comfy_patched_weights
    patcher.model.device = patcher.load_device
    return patcher


def drop_tensors(root: torch.nn.Module) -> int:
    """After an eject: every parameter and buffer of `root` becomes a meta
    tensor, so nothing in this process references the broker's memory any
    more. Returns the bytes dropped."""
    dropped = 0
    for module in root.modules():
        for slot in ("_parameters", "_buffers"):
            tensors = getattr(module, slot)
            for name, t in list(tensors.items()):
                if t is None or t.device.type == "meta":
                    continue
                dropped += t.numel() * t.element_size()
                meta = torch.empty(t.shape, dtype=t.dtype, device="meta")
                tensors[name] = torch.nn.Parameter(meta, requires_grad=False) \
                    if slot == "_parameters" else meta
        for attr in ("weight_function", "bias_function"):
            if attr in module.__dict__:
                module.__dict__[attr] = []
    if hasattr(root, lora.APPLIED_ATTR):
        getattr(root, lora.APPLIED_ATTR).clear()
    placement = getattr(root, PLACEMENT_ATTR, None)
    if placement is not None:
        placement.copied_unstreamable.clear()
    return dropped
