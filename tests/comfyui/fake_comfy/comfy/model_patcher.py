"""ComfyUI-shaped ModelPatcher: the stock load/unload/patch paths (moves
modules to the load device, patches weights from the current weight)."""
import collections
import contextlib
import uuid

import torch

import comfy.float
import comfy.lora
import comfy.model_management
import comfy.utils
from comfy.patcher_extension import CallbacksMP


def string_to_seed(data):
    return comfy.utils.string_to_seed(data)


def get_key_weight(model, key):
    op_keys = key.rsplit(".", 1)
    if len(op_keys) < 2:
        return comfy.utils.get_attr(model, key), None, None
    op = comfy.utils.get_attr(model, op_keys[0])
    return getattr(op, op_keys[1]), getattr(op, "set_" + op_keys[1], None), \
        getattr(op, "convert_" + op_keys[1], None)


def wipe_lowvram_weight(m):
    if hasattr(m, "prev_comfy_cast_weights"):
        m.comfy_cast_weights = m.prev_comfy_cast_weights
        del m.prev_comfy_cast_weights
    if hasattr(m, "weight_function"):
        m.weight_function = []
    if hasattr(m, "bias_function"):
        m.bias_function = []


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.size = size
        self.model = model
        if getattr(self.model, "device", None) is None:
            self.model.device = offload_device
        self.patches = {}
        self.backup = {}
        self.object_patches = {}
        self.object_patches_backup = {}
        self.load_device = load_device
        self.offload_device = offload_device
        self.weight_inplace_update = weight_inplace_update
        self.patches_uuid = uuid.uuid4()
        self.parent = None
        self.callbacks = {}
        self.forced_hooks = None
        for attr, value in (("model_loaded_weight_memory", 0), ("model_lowvram", False),
                            ("current_weight_patches_uuid", None), ("lowvram_patch_counter", 0)):
            if not hasattr(self.model, attr):
                setattr(self.model, attr, value)

    def model_size(self):
        if self.size > 0:
            return self.size
        self.size = comfy.model_management.module_size(self.model)
        return self.size

    def loaded_size(self):
        return self.model.model_loaded_weight_memory

    def clone(self):
        n = self.__class__(self.model, self.load_device, self.offload_device, self.model_size(),
                           weight_inplace_update=self.weight_inplace_update)
        n.patches = {k: v[:] for k, v in self.patches.items()}
        n.patches_uuid = self.patches_uuid
        n.object_patches = self.object_patches.copy()
        n.backup = self.backup
        n.object_patches_backup = self.object_patches_backup
        n.parent = self
        return n

    def is_clone(self, other):
        return hasattr(other, "model") and self.model is other.model

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        p = set()
        model_sd = self.model.state_dict()
        for k in patches:
            if k in model_sd:
                p.add(k)
                self.patches.setdefault(k, []).append((strength_patch, patches[k], strength_model, None, None))
        self.patches_uuid = uuid.uuid4()
        return list(p)

    def model_patches_to(self, device):
        pass

    def model_dtype(self):
        return torch.float32

    def get_all_callbacks(self, call_type):
        return self.callbacks.get(call_type, [])

    def use_ejected(self, skip_and_inject_on_exit_only=False):
        return contextlib.nullcontext()

    def inject_model(self):
        pass

    def eject_model(self):
        pass

    def unpatch_hooks(self, whitelist_keys_set=None):
        pass

    def apply_hooks(self, hooks, transformer_options=None, force_apply=False):
        return {}

    def patch_weight_to_device(self, key, device_to=None, inplace_update=False):
        if key not in self.patches:
            return
        weight, set_func, convert_func = get_key_weight(self.model, key)
        inplace_update = self.weight_inplace_update or inplace_update
        if key not in self.backup:
            self.backup[key] = collections.namedtuple("Dimension", ["weight", "inplace_update"])(
                weight.to(device=self.offload_device, copy=inplace_update), inplace_update)
        temp = comfy.model_management.cast_to_device(weight, device_to or weight.device, torch.float32, copy=True)
        out = comfy.lora.calculate_weight(self.patches[key], temp, key)
        out = comfy.float.stochastic_rounding(out, weight.dtype)
        if inplace_update:
            comfy.utils.copy_to_param(self.model, key, out)
        else:
            comfy.utils.set_attr_param(self.model, key, out)

    def pin_weight_to_device(self, key):
        pass

    def unpin_weight(self, key):
        pass

    def unpin_all_weights(self):
        pass

    def load(self, device_to=None, lowvram_model_memory=0, force_patch_weights=False, full_load=False):
        for key in self.patches:
            self.patch_weight_to_device(key, device_to=device_to)
        self.model.to(device_to)
        self.model.device = device_to
        self.model.model_loaded_weight_memory = self.model_size()
        self.model.current_weight_patches_uuid = self.patches_uuid
        for callback in self.get_all_callbacks(CallbacksMP.ON_LOAD):
            callback(self, device_to, lowvram_model_memory, force_patch_weights, full_load)

    def patch_model(self, device_to=None, lowvram_model_memory=0, load_weights=True, force_patch_weights=False):
        for k in self.object_patches:
            old = comfy.utils.set_attr(self.model, k, self.object_patches[k])
            self.object_patches_backup.setdefault(k, old)
        if load_weights:
            self.load(device_to, lowvram_model_memory=lowvram_model_memory,
                      force_patch_weights=force_patch_weights, full_load=lowvram_model_memory == 0)
        self.inject_model()
        return self.model

    def unpatch_model(self, device_to=None, unpatch_weights=True):
        self.eject_model()
        if unpatch_weights:
            self.unpin_all_weights()
            if self.model.model_lowvram:
                for m in self.model.modules():
                    wipe_lowvram_weight(m)
                self.model.model_lowvram = False
            for k, bk in list(self.backup.items()):
                if bk.inplace_update:
                    comfy.utils.copy_to_param(self.model, k, bk.weight)
                else:
                    comfy.utils.set_attr_param(self.model, k, bk.weight)
            self.model.current_weight_patches_uuid = None
            self.backup.clear()
            if device_to is not None:
                self.model.to(device_to)
                self.model.device = device_to
            self.model.model_loaded_weight_memory = 0
        for k, v in list(self.object_patches_backup.items()):
            comfy.utils.set_attr(self.model, k, v)
        self.object_patches_backup.clear()

    def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False):
        return 0

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
        unpatch = self.model.current_weight_patches_uuid is not None and \
            self.model.current_weight_patches_uuid != self.patches_uuid
        self.unpatch_model(self.offload_device, unpatch_weights=unpatch)
        self.patch_model(load_weights=False)
        if not unpatch and self.model.model_loaded_weight_memory > 0:
            return 0
        before = self.model.model_loaded_weight_memory
        self.load(device_to, lowvram_model_memory=before + extra_memory, force_patch_weights=force_patch_weights)
        return self.model.model_loaded_weight_memory - before

    def detach(self, unpatch_all=True):
        self.eject_model()
        if unpatch_all:
            self.unpatch_model(self.offload_device, unpatch_weights=unpatch_all)
        return self.model

    def current_loaded_device(self):
        return self.model.device


# Newer ComfyUI builds diffusion models with CoreModelPatcher, which is
# ModelPatcherDynamic when DynamicVRAM is on.
CoreModelPatcher = ModelPatcher
