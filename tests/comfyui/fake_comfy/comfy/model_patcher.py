"""ComfyUI-shaped ModelPatcher: the stock load/unload/patch paths (moves
modules to the load device, patches weights from the current weight), weight
hooks, and the state dict for saving (ComfyUI 0.33.0 comfy/model_patcher.py)."""
import collections
import contextlib
import math
import uuid

import torch

import comfy.float
import comfy.hooks
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


# ComfyUI 0.33.0 comfy/model_patcher.py MemoryCounter: how much of the free
# memory MaxSpeed hook mode may use for hook backups and cached hooked weights.
class MemoryCounter:
    def __init__(self, initial, minimum=0):
        self.value = initial
        self.minimum = minimum

    def use(self, weight):
        weight_size = weight.nelement() * weight.element_size()
        if self.value - weight_size > self.minimum:
            self.value -= weight_size
            return True
        return False


CustomTorchDevice = collections.namedtuple("FakeDevice", ["type", "index"])("comfy-lazy-caster", 0)


# ComfyUI 0.33.0 comfy/model_patcher.py LazyCastingParam: what
# model_state_dict_for_saving puts in the saved state dict for a weight of a
# comfy.ops module that was not patched in place (comfy_patched_weights);
# safetensors sees a non-cpu device and calls .to("cpu"), which asks the
# patcher for the patched value with patch_weight_to_device(return_weight=True)
# and expects a tensor back.
class LazyCastingParam(torch.nn.Parameter):
    def __new__(cls, model, key, tensor):
        return super().__new__(cls, tensor)

    def __init__(self, model, key, tensor):
        self.model = model
        self.key = key

    @property
    def device(self):
        return CustomTorchDevice

    def to(self, *args, **kwargs):
        return self.model.patch_weight_to_device(self.key, device_to=self.model.load_device,
                                                 return_weight=True).to("cpu")


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
        # 0.33.0 hook state: hook_backup holds each hooked key's weight from
        # before the hook (stock: a copy, copied back in place by unpatch_hooks);
        # clones share it, like backup.
        self.hook_patches = {}
        self.hook_patches_backup = None
        self.hook_backup = {}
        self.cached_hook_patches = {}
        self.current_hooks = None
        self.forced_hooks = None
        self.is_clip = False
        self.hook_mode = comfy.hooks.EnumHookMode.MaxSpeed
        self.force_cast_weights = False   # 0.33.0
        self.cached_patcher_init = None   # 0.33.0: (loader, args[, index]) to rebuild the model
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

    def is_dynamic(self):  # 0.33.0: ModelPatcherDynamic answers True
        return False

    # 0.33.0 set_model_compute_dtype: CLIP sets float32; the classic load then
    # casts every comfy.ops module at forward (force_cast_weights).
    def set_model_compute_dtype(self, dtype):
        self.object_patches["manual_cast_dtype"] = dtype
        if dtype is not None:
            self.force_cast_weights = True
        self.patches_uuid = uuid.uuid4()

    def get_clone_model_override(self):  # 0.33.0
        return self.model, (self.backup, self.object_patches_backup)

    # 0.33.0 clone: a dynamic patcher cloned with disable_dynamic, or any
    # patcher with force_deepcopy, gets a model rebuilt by cached_patcher_init
    # (the loader run again with disable_dynamic=True); otherwise the clone
    # shares self.model and its backups.
    def clone(self, disable_dynamic=False, model_override=None, force_deepcopy=False):
        class_ = self.__class__
        if self.is_dynamic() and disable_dynamic or force_deepcopy:
            if self.is_dynamic() and disable_dynamic:
                class_ = ModelPatcher
            if model_override is None:
                if self.cached_patcher_init is None:
                    raise RuntimeError("Cannot create non-dynamic delegate: cached_patcher_init is not initialized.")
                temp = self.cached_patcher_init[0](*self.cached_patcher_init[1], disable_dynamic=True)
                if len(self.cached_patcher_init) > 2:
                    temp = temp[self.cached_patcher_init[2]]
                model_override = temp.get_clone_model_override()
        if model_override is None:
            model_override = self.get_clone_model_override()
        n = class_(model_override[0], self.load_device, self.offload_device, self.model_size(),
                   weight_inplace_update=self.weight_inplace_update)
        n.patches = {k: v[:] for k, v in self.patches.items()}
        n.patches_uuid = self.patches_uuid
        n.object_patches = self.object_patches.copy()
        n.backup, n.object_patches_backup = model_override[1]
        n.parent = self
        n.force_cast_weights = self.force_cast_weights
        n.cached_patcher_init = self.cached_patcher_init
        # 0.33.0 clone: hook patches copied, hook_backup shared, hooks cloned.
        n.hook_patches = {k: dict(v) for k, v in self.hook_patches.items()}
        n.hook_patches_backup = self.hook_patches_backup
        n.cached_hook_patches = {g: dict(c) for g, c in self.cached_hook_patches.items()}
        n.hook_backup = self.hook_backup
        n.current_hooks = self.current_hooks.clone() if self.current_hooks else self.current_hooks
        n.forced_hooks = self.forced_hooks.clone() if self.forced_hooks else self.forced_hooks
        n.is_clip = self.is_clip
        n.hook_mode = self.hook_mode
        return n

    # 0.33.0 deepclone_multigpu: the loader's factory builds a fresh model;
    # the clone takes it with empty backups and the new load device.
    def deepclone_multigpu(self, new_load_device=None, models_cache=None):
        if self.cached_patcher_init is None:
            raise RuntimeError("Cannot create multigpu deepclone of {}: the loader that produced this model "
                               "does not support multigpu (cached_patcher_init is not initialized)."
                               .format(self.model.__class__.__name__))
        comfy.model_management.unload_model_and_clones(self)
        temp = self.cached_patcher_init[0](*self.cached_patcher_init[1])
        if len(self.cached_patcher_init) > 2:
            temp = temp[self.cached_patcher_init[2]]
        n = self.clone(model_override=(temp.model, ({}, {})))
        n.hook_backup = {}
        if new_load_device is not None:
            n.load_device = new_load_device
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

    def model_state_dict(self, filter_prefix=None):
        sd = self.model.state_dict()
        if filter_prefix is not None:
            for k in [k for k in sd if not k.startswith(filter_prefix)]:
                sd.pop(k)
        return sd

    def get_key_patches(self, filter_prefix=None):
        p = {}
        for k in self.model_state_dict(filter_prefix):
            bk = self.backup.get(k, None)
            hbk = self.hook_backup.get(k, None)
            weight, set_func, convert_func = get_key_weight(self.model, k)
            if bk is not None:
                weight = bk.weight
            if hbk is not None:
                weight = hbk[0]
            if convert_func is None:
                convert_func = lambda a, **kwargs: a  # noqa: E731
            p[k] = [(weight, convert_func)] + self.patches.get(k, [])
        return p

    # ComfyUI 0.33.0 ModelPatcher.patch_weight_to_device, same signature and
    # branches: a key without patches returns the weight itself; return_weight
    # returns the patched tensor and records no backup; otherwise the result is
    # written in place (copy_to_param) when inplace_update, else it replaces
    # the parameter (set_attr_param).
    def patch_weight_to_device(self, key, device_to=None, inplace_update=False, return_weight=False,
                               force_cast=False):
        weight, set_func, convert_func = get_key_weight(self.model, key)
        if key not in self.patches and not force_cast:
            return weight
        inplace_update = self.weight_inplace_update or inplace_update
        if key not in self.backup and not return_weight:
            self.backup[key] = collections.namedtuple("Dimension", ["weight", "inplace_update"])(
                weight.to(device=self.offload_device, copy=inplace_update), inplace_update)
        temp_dtype = comfy.model_management.lora_compute_dtype(device_to) if key in self.patches else None
        if device_to is not None:
            temp = comfy.model_management.cast_to_device(weight, device_to, temp_dtype, copy=True)
        else:
            temp = weight.to(temp_dtype, copy=True)
        if convert_func is not None:
            temp = convert_func(temp, inplace=True)
        out = comfy.lora.calculate_weight(self.patches[key], temp, key) if key in self.patches else temp
        if set_func is None:
            if key in self.patches:
                out = comfy.float.stochastic_rounding(out, weight.dtype, seed=comfy.utils.string_to_seed(key))
            if return_weight:
                return out
            elif inplace_update:
                comfy.utils.copy_to_param(self.model, key, out)
            else:
                comfy.utils.set_attr_param(self.model, key, out)
        else:
            return set_func(out, inplace_update=inplace_update, seed=comfy.utils.string_to_seed(key),
                            return_weight=return_weight)

    # -- weight hooks: ComfyUI 0.33.0 ModelPatcher, same calls and order ------
    def register_all_hook_patches(self, hooks, target_dict, model_options=None, registered=None):
        if self.hook_patches_backup is not None:
            self.hook_patches = self.hook_patches_backup
            self.hook_patches_backup = None
        if registered is None:
            registered = comfy.hooks.HookGroup()
        to_register = []
        for hook in hooks.get_type(comfy.hooks.EnumHookType.Weight):
            if hook.hook_ref not in self.hook_patches:
                to_register.append(hook)
            else:
                registered.add(hook)
        if to_register:
            self.hook_patches_backup = {k: dict(v) for k, v in self.hook_patches.items()}
            for hook in to_register:
                hook.add_hook_patches(self, model_options, target_dict, registered)
        return registered

    def add_hook_patches(self, hook, patches, strength_patch=1.0, strength_model=1.0):
        current = self.hook_patches.get(hook.hook_ref, {})
        p = set()
        model_sd = self.model.state_dict()
        for k in patches:
            if k in model_sd:
                p.add(k)
                current.setdefault(k, []).append((strength_patch, patches[k], strength_model, None, None))
        self.hook_patches[hook.hook_ref] = current
        self.patches_uuid = uuid.uuid4()
        return list(p)

    def get_combined_hook_patches(self, hooks):
        combined = {}
        if hooks is not None:
            for hook in hooks.hooks:
                for key, plist in self.hook_patches.get(hook.hook_ref, {}).items():
                    current = combined.get(key, [])
                    if math.isclose(hook.strength, 1.0):
                        current.extend(plist)
                    else:
                        current.extend(tuple([p[0] * hook.strength] + list(p[1:])) for p in plist)
                    combined[key] = current
        return combined

    def apply_hooks(self, hooks, transformer_options=None, force_apply=False):
        if self.current_hooks == hooks and (not force_apply or (not self.is_clip and hooks is None)):
            return comfy.hooks.create_transformer_options_from_hooks(self, hooks, transformer_options)
        self.patch_hooks(hooks=hooks)
        return comfy.hooks.create_transformer_options_from_hooks(self, hooks, transformer_options)

    def patch_hooks(self, hooks):
        with self.use_ejected():
            if hooks is not None:
                model_sd_keys = list(self.model_state_dict().keys())
                memory_counter = None
                if self.hook_mode == comfy.hooks.EnumHookMode.MaxSpeed:
                    memory_counter = MemoryCounter(
                        initial=comfy.model_management.get_free_memory(self.load_device),
                        minimum=comfy.model_management.minimum_inference_memory() * 2)
                cached_weights = self.cached_hook_patches.get(hooks, None)
                if cached_weights is not None:
                    model_sd_keys_set = set(model_sd_keys)
                    for key in cached_weights:
                        self.patch_cached_hook_weights(cached_weights=cached_weights, key=key,
                                                       memory_counter=memory_counter)
                        model_sd_keys_set.remove(key)
                    self.unpatch_hooks(model_sd_keys_set)
                else:
                    self.unpatch_hooks()
                    relevant = self.get_combined_hook_patches(hooks=hooks)
                    original_weights = self.get_key_patches() if relevant else None
                    for key in relevant:
                        if key in model_sd_keys:
                            self.patch_hook_weight_to_device(hooks=hooks, combined_patches=relevant, key=key,
                                                             original_weights=original_weights,
                                                             memory_counter=memory_counter)
            else:
                self.unpatch_hooks()
            self.current_hooks = hooks

    def patch_cached_hook_weights(self, cached_weights, key, memory_counter):
        if key not in self.hook_backup:
            weight = comfy.utils.get_attr(self.model, key)
            target_device = self.offload_device
            if self.hook_mode == comfy.hooks.EnumHookMode.MaxSpeed and memory_counter.use(weight):
                target_device = weight.device
            self.hook_backup[key] = (weight.to(device=target_device, copy=True), weight.device)
        comfy.utils.copy_to_param(self.model, key, cached_weights[key][0].to(device=cached_weights[key][1]))

    def patch_hook_weight_to_device(self, hooks, combined_patches, key, original_weights, memory_counter):
        if key not in combined_patches:
            return
        weight, set_func, convert_func = get_key_weight(self.model, key)
        if key not in self.hook_backup:
            target_device = self.offload_device
            if self.hook_mode == comfy.hooks.EnumHookMode.MaxSpeed and memory_counter.use(weight):
                target_device = weight.device
            self.hook_backup[key] = (weight.to(device=target_device, copy=True), weight.device)
        temp = comfy.model_management.cast_to_device(weight, weight.device, torch.float32, copy=True)
        if convert_func is not None:
            temp = convert_func(temp, inplace=True)
        out = comfy.lora.calculate_weight(combined_patches[key], temp, key, original_weights=original_weights)
        del original_weights[key]
        if set_func is None:
            out = comfy.float.stochastic_rounding(out, weight.dtype, seed=comfy.utils.string_to_seed(key))
            comfy.utils.copy_to_param(self.model, key, out)
        else:
            set_func(out, inplace_update=True, seed=comfy.utils.string_to_seed(key))
        if self.hook_mode == comfy.hooks.EnumHookMode.MaxSpeed:
            target_device = self.offload_device
            if memory_counter.use(weight):
                target_device = weight.device
            self.cached_hook_patches.setdefault(hooks, {})
            self.cached_hook_patches[hooks][key] = (out.to(device=target_device, copy=False), weight.device)

    def unpatch_hooks(self, whitelist_keys_set=None):
        with self.use_ejected():
            if len(self.hook_backup) == 0:
                self.current_hooks = None
                return
            keys = list(self.hook_backup.keys())
            if whitelist_keys_set:
                for k in keys:
                    if k in whitelist_keys_set:
                        backup, backup_device = self.hook_backup[k]
                        comfy.utils.copy_to_param(self.model, k, backup.to(device=backup_device))
                        self.hook_backup.pop(k)
            else:
                for k in keys:
                    comfy.utils.copy_to_param(self.model, k, self.hook_backup[k][0].to(device=self.hook_backup[k][1]))
                self.hook_backup.clear()
                self.current_hooks = None

    def clean_hooks(self):
        self.unpatch_hooks()
        self.cached_hook_patches.clear()
        self.patch_hooks(None)

    # -- saving: ComfyUI 0.33.0 ModelPatcher.model_state_dict_for_saving ------
    def model_state_dict_for_saving(self, model=None, prefix=""):
        if model is None:
            model = self.model
        original_state_dict = model.state_dict()
        output_state_dict = {}
        for k, v in original_state_dict.items():
            op_keys = k.rsplit(".", 1)
            if (len(op_keys) < 2) or op_keys[1] not in ["weight", "bias"]:
                output_state_dict[k] = v
                continue
            try:
                op = comfy.utils.get_attr(model, op_keys[0])
            except Exception:
                output_state_dict[k] = v
                continue
            if not op or not hasattr(op, "comfy_cast_weights") or \
                    (hasattr(op, "comfy_patched_weights") and op.comfy_patched_weights is True):
                output_state_dict[k] = v
                continue
            key = prefix + k
            output_state_dict[k] = LazyCastingParam(self, key, comfy.utils.get_attr(self.model, key))
        return output_state_dict

    # 0.33.0: model_state_dict_for_saving(self.model.diffusion_model,
    # "diffusion_model.") then BaseModel.state_dict_for_saving, whose
    # supported_models_base prefixes are "model.diffusion_model." for the
    # UNet, the text encoder prefix ("cond_stage_model." here) and the VAE
    # prefix ("first_stage_model."). The fake's models have no BaseModel
    # wrapper: the patcher's model is the diffusion model itself.
    def state_dict_for_saving(self, clip_state_dict=None, vae_state_dict=None, clip_vision_state_dict=None):
        diffusion = getattr(self.model, "diffusion_model", None)
        if diffusion is not None:
            unet_sd = self.model_state_dict_for_saving(diffusion, "diffusion_model.")
        else:
            unet_sd = self.model_state_dict_for_saving(self.model, "")
        sd = comfy.utils.state_dict_prefix_replace(unet_sd, {"": "model.diffusion_model."})
        if clip_state_dict is not None:
            sd.update(comfy.utils.state_dict_prefix_replace(clip_state_dict, {"": "cond_stage_model."}))
        if vae_state_dict is not None:
            sd.update(comfy.utils.state_dict_prefix_replace(vae_state_dict, {"": "first_stage_model."}))
        return sd

    def pin_weight_to_device(self, key):
        pass

    def unpin_weight(self, key):
        pass

    def unpin_all_weights(self):
        pass

    # 0.33.0 load, full-load branch: hooks off first, each module's weights
    # patched (comfy_patched_weights marks a comfy.ops module patched in place,
    # so saving takes its parameter as is), forced hooks (CLIP) on last.
    def load(self, device_to=None, lowvram_model_memory=0, force_patch_weights=False, full_load=False):
        self.unpatch_hooks()
        for name, m in self.model.named_modules():
            if getattr(m, "comfy_patched_weights", False):
                continue
            for param in m._parameters:
                key = f"{name}.{param}" if name else param
                if key in self.patches:
                    self.patch_weight_to_device(key, device_to=device_to)
            if hasattr(m, "comfy_cast_weights"):
                m.comfy_patched_weights = True
                if self.force_cast_weights:  # 0.33.0 load: cast_weight = self.force_cast_weights
                    m.prev_comfy_cast_weights = m.comfy_cast_weights
                    m.comfy_cast_weights = True
        self.model.to(device_to)
        self.model.device = device_to
        self.model.model_loaded_weight_memory = self.model_size()
        self.model.current_weight_patches_uuid = self.patches_uuid
        for callback in self.get_all_callbacks(CallbacksMP.ON_LOAD):
            callback(self, device_to, lowvram_model_memory, force_patch_weights, full_load)
        self.apply_hooks(self.forced_hooks, force_apply=True)

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
            self.unpatch_hooks()
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
            for m in self.model.modules():
                if hasattr(m, "comfy_patched_weights"):
                    del m.comfy_patched_weights
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
            self.apply_hooks(self.forced_hooks, force_apply=True)
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

    def model_patches_models(self):  # 0.33.0: load_models_gpu loads these too
        return []

    # 0.33.0: "Pinned memory pressure tracking is only implemented for
    # DynamicVram loading" -- the classic patcher reports none.
    def pinned_memory_size(self):
        return 0

    def loaded_ram_size(self):
        return 0

    def partially_unload_ram(self, ram_to_unload):
        return 0


class ModelPatcherDynamic(ModelPatcher):
    """ComfyUI 0.33.0 comfy/model_patcher.py ModelPatcherDynamic, only what
    distorch meets: __new__ hands out a classic ModelPatcher for a CPU load
    device; weights stay where they are (no move on load); its host copies
    are pinned at load and counted in TOTAL_PINNED_MEMORY (0.33.0 pins them
    at first use in per-device HostBuffers); load_models_gpu's pin pressure
    takes them back with partially_unload_ram / unregister_inactive_pins."""

    def __new__(cls, model=None, load_device=None, offload_device=None, size=0, weight_inplace_update=False):
        if load_device is not None and comfy.model_management.is_device_cpu(load_device):
            return ModelPatcher(model, load_device, offload_device, size, weight_inplace_update)
        return super().__new__(cls)

    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        super().__init__(model, load_device, offload_device, size, weight_inplace_update)
        if not hasattr(self.model, "dynamic_pins"):
            self.model.dynamic_pins = {}
        self.model.dynamic_pins.setdefault(self.load_device, {"pinned": 0, "active": False,
                                                              "current_prompt": False})
        if not hasattr(self.model, "dynamic_patchers"):
            self.model.dynamic_patchers = set()
        self.model.dynamic_patchers.add(id(self))

    def is_dynamic(self):
        return True

    def load(self, device_to=None, lowvram_model_memory=0, force_patch_weights=False, full_load=False, dirty=False):
        pin_state = self.model.dynamic_pins[self.load_device]
        if pin_state["pinned"] == 0:
            pin_state["pinned"] = comfy.model_management.module_size(self.model)
            comfy.model_management.TOTAL_PINNED_MEMORY += pin_state["pinned"]
        pin_state["active"] = True
        self.model.device = device_to
        self.model.current_weight_patches_uuid = self.patches_uuid

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
        self.load(device_to)
        return None  # 0.33.0: "Hit the custom node devs with a None"

    def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False):
        return 0

    def unpatch_model(self, device_to=None, unpatch_weights=True):
        super().unpatch_model(device_to=None, unpatch_weights=False)
        if unpatch_weights:
            self.partially_unload_ram(1e32)

    def pinned_memory_size(self):
        return self.model.dynamic_pins[self.load_device]["pinned"]

    def loaded_ram_size(self):
        return self.pinned_memory_size()

    def partially_unload_ram(self, ram_to_unload, subsets=None):
        pin_state = self.model.dynamic_pins[self.load_device]
        freed = int(min(pin_state["pinned"], ram_to_unload))
        pin_state["pinned"] -= freed
        comfy.model_management.TOTAL_PINNED_MEMORY = max(0, comfy.model_management.TOTAL_PINNED_MEMORY - freed)
        if freed:
            comfy.model_management.CALLS.append(("unpin", self.model.__class__.__name__, freed))
        return freed

    def unregister_inactive_pins(self, ram_to_unload, subsets=None):
        return self.partially_unload_ram(ram_to_unload, subsets)


# ComfyUI 0.33.0: CoreModelPatcher = ModelPatcher, and main.py sets it to
# ModelPatcherDynamic when comfy-aimdo initialises (DynamicVRAM on).
CoreModelPatcher = ModelPatcher
