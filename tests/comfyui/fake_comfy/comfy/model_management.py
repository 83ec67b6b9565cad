"""ComfyUI-shaped model management (names and signatures of ComfyUI 0.8.0; loading,
freeing and pinned-memory accounting of ComfyUI 0.33.0).

CALLS records every call of the functions distorch patches or relies on, so
tests can check order and that a no-op really called nothing."""
import sys
import weakref

import torch

CALLS = []
CAST_COUNT = [0]
EMPTY_CACHE_COUNT = [0]
DEVICE = torch.device("cpu")
current_loaded_models = []


def get_torch_device():
    CALLS.append("get_torch_device")
    return DEVICE


def text_encoder_device():
    CALLS.append("text_encoder_device")
    return DEVICE


def text_encoder_offload_device():
    return torch.device("cpu")


def text_encoder_initial_device(load_device, offload_device, model_size=0):
    return load_device


def unet_offload_device():
    return torch.device("cpu")


def unet_inital_load_device(parameters, dtype):
    return get_torch_device()


def vae_device():
    return get_torch_device()


def is_device_cpu(device):
    return getattr(device, "type", None) == "cpu"


def is_device_cuda(device):
    return getattr(device, "type", None) == "cuda"


def lora_compute_dtype(device):
    return torch.float32


def module_size(module):
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def cast_to(weight, dtype=None, device=None, non_blocking=False, copy=False, stream=None):
    if device is None or weight.device == device:
        if not copy and (dtype is None or weight.dtype == dtype):
            return weight
        return weight.to(dtype=dtype, copy=copy)
    r = torch.empty_like(weight, dtype=dtype, device=device)
    r.copy_(weight)
    return r


def cast_to_device(tensor, device, dtype, copy=False):
    return cast_to(tensor, dtype=dtype, device=device, copy=copy)


# ComfyUI 0.33.0 comfy/model_management.py: EXTRA_RESERVED_VRAM (400 MiB off
# Windows), extra_reserved_memory, minimum_inference_memory.
EXTRA_RESERVED_VRAM = 400 * 1024 * 1024


def extra_reserved_memory():
    return EXTRA_RESERVED_VRAM


def minimum_inference_memory():  # 0.33.0: 0.8 GiB + reserve (read by MaxSpeed weight hooks)
    return (1024 * 1024 * 1024) * 0.8 + extra_reserved_memory()


FREE_VRAM = [1 << 34]       # what get_free_memory answers for a non-cpu device (tests set it)
AVAILABLE_RAM = [1 << 36]   # psutil.virtual_memory().available in 0.33.0 (tests set it)


def get_free_memory(dev=None, torch_free_too=False):
    free = 1 << 34 if is_device_cpu(dev) or dev is None else FREE_VRAM[0]
    return (free, 0) if torch_free_too else free


def archive_model_dtypes(model):  # 0.33.0: each parameter's dtype, for lazy ops and DynamicVRAM
    for name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            setattr(module, f"{param_name}_comfy_model_dtype", param.dtype)
        for buf_name, buf in module.named_buffers(recurse=False):
            setattr(module, f"{buf_name}_comfy_model_dtype", buf.dtype)


# -- pinned memory: ComfyUI 0.33.0 comfy/model_management.py -----------------
# TOTAL_PINNED_MEMORY counts every pin ComfyUI made (pin_memory for classic
# patchers' offloaded weights, DynamicVRAM's HostBuffers). Before a classic
# load, free_memory(pins_required=model_memory()) makes room: ensure_pin_budget
# and ensure_pin_registerable unpin DynamicVRAM models (models_for_pin_eviction
# yields only dynamic ones) until the new pins fit.
PINNED_MEMORY = {}
TOTAL_PINNED_MEMORY = 0
MAX_PINNED_MEMORY = 1 << 35
PIN_PRESSURE_HYSTERESIS = 256 * 1024 * 1024


def pin_memory(tensor):
    global TOTAL_PINNED_MEMORY
    if MAX_PINNED_MEMORY <= 0 or not is_device_cpu(tensor.device) or tensor.data_ptr() in PINNED_MEMORY:
        return False
    size = tensor.numel() * tensor.element_size()
    ensure_pin_registerable(size)
    PINNED_MEMORY[tensor.data_ptr()] = size
    TOTAL_PINNED_MEMORY += size
    return True


def unpin_memory(tensor):
    global TOTAL_PINNED_MEMORY
    size = PINNED_MEMORY.pop(tensor.data_ptr(), None)
    if size is None:
        return False
    TOTAL_PINNED_MEMORY -= size
    return True


def models_for_pin_eviction():
    for loaded_model in current_loaded_models:
        model = loaded_model.model
        if model is not None and model.is_dynamic():
            yield model


def free_pins(size, registrations=False):
    freed = 0
    for model in models_for_pin_eviction():
        if size - freed <= 0:
            break
        unpin = model.unregister_inactive_pins if registrations else model.partially_unload_ram
        freed += unpin(size - freed)
    return freed


def ensure_pin_budget(size):
    import comfy.memory_management
    shortfall = size + max(comfy.memory_management.RAM_CACHE_HEADROOM / 2, 2048 * 1024 ** 2) - AVAILABLE_RAM[0]
    if shortfall <= 0:
        return True
    return free_pins(shortfall + PIN_PRESSURE_HYSTERESIS) >= shortfall


def ensure_pin_registerable(size):
    shortfall = TOTAL_PINNED_MEMORY + size - MAX_PINNED_MEMORY
    return shortfall <= 0 or free_pins(shortfall, registrations=True) >= shortfall


class LoadedModel:
    def __init__(self, model):
        self._model = weakref.ref(model)
        self.device = model.load_device
        self.real_model = None
        self.currently_used = True
        self.model_finalizer = None

    @property
    def model(self):
        return self._model()

    def model_memory(self):
        return self.model.model_size()

    def model_loaded_memory(self):
        return self.model.loaded_size()

    def model_offloaded_memory(self):
        return self.model.model_size() - self.model.loaded_size()

    def model_memory_required(self, device):
        if device == self.model.current_loaded_device():
            return self.model_offloaded_memory()
        return self.model_memory()

    def model_load(self, lowvram_model_memory=0, force_patch_weights=False):
        use_more_vram = lowvram_model_memory or 1e32
        self.model_use_more_vram(use_more_vram, force_patch_weights=force_patch_weights)
        real_model = self.model.model
        self.real_model = weakref.ref(real_model)
        self.model_finalizer = weakref.finalize(real_model, cleanup_models)
        return real_model

    def model_unload(self, memory_to_free=None, unpatch_weights=True):
        if memory_to_free is not None and memory_to_free < self.model.loaded_size():
            freed = self.model.partially_unload(self.model.offload_device, memory_to_free)
            if freed >= memory_to_free:
                return False
        self.model.detach(unpatch_weights)
        self.model_finalizer.detach()
        self.model_finalizer = None
        self.real_model = None
        return True

    def model_use_more_vram(self, extra_memory, force_patch_weights=False):
        return self.model.partially_load(self.device, extra_memory, force_patch_weights=force_patch_weights)

    def __eq__(self, other):
        return self.model is other.model

    def is_dead(self):
        return self.real_model() is not None and self.model is None


def cleanup_models():
    for i in [i for i, m in enumerate(current_loaded_models) if m.real_model() is None][::-1]:
        current_loaded_models.pop(i)


# ComfyUI 0.33.0 free_memory: models on `device` are unloaded, least
# offloaded first, until memory_required fits in the free memory; a dynamic
# model is never unloaded for another dynamic load; then, for a classic load,
# the pin budget is made (ensure_pin_budget / ensure_pin_registerable).
def free_memory(memory_required, device, keep_loaded=[], for_dynamic=False, pins_required=0, ram_required=0):
    CALLS.append(("free_memory", str(device), len(keep_loaded)))
    unloaded_model = []
    can_unload = []
    for i in range(len(current_loaded_models) - 1, -1, -1):
        shift_model = current_loaded_models[i]
        if (device is None or shift_model.device == device) and shift_model not in keep_loaded \
                and not shift_model.is_dead():
            can_unload.append((-shift_model.model_offloaded_memory(), sys.getrefcount(shift_model.model),
                               shift_model.model_memory(), i))
            shift_model.currently_used = False
    for x in sorted(can_unload):
        i = x[-1]
        memory_to_free = 0 if device is None else memory_required - get_free_memory(device)
        if current_loaded_models[i].model.is_dynamic() and for_dynamic:
            memory_required -= current_loaded_models[i].model.loaded_size()
            memory_to_free = 0
        if memory_to_free > 0 and current_loaded_models[i].model_unload(memory_to_free):
            unloaded_model.append(i)
    unloaded = [current_loaded_models.pop(i) for i in sorted(unloaded_model, reverse=True)]
    if not for_dynamic and pins_required > 0:
        ensure_pin_budget(pins_required)
        ensure_pin_registerable(pins_required)
    if unloaded:
        soft_empty_cache()
    return unloaded


# ComfyUI 0.33.0 load_models_gpu, with vram_state HIGH_VRAM (full loads):
# per device, free model_memory_required() * 1.1 + the inference reserve, and
# a classic (non-dynamic) model asks for model_memory() bytes of pin budget.
def load_models_gpu(models, memory_required=0, force_patch_weights=False,
                    minimum_memory_required=None, force_full_load=False):
    CALLS.append("load_models_gpu")
    inference_memory = minimum_inference_memory()
    extra_mem = max(inference_memory, memory_required + extra_reserved_memory())
    if minimum_memory_required is None:
        minimum_memory_required = extra_mem
    else:
        minimum_memory_required = max(inference_memory, minimum_memory_required + extra_reserved_memory())
    models_temp = {}
    for m in models:
        models_temp[m] = None
        for mm in m.model_patches_models():
            models_temp[mm] = None
    models = list(models_temp)
    models.reverse()
    models_to_load = []
    free_for_dynamic = True
    for x in models:
        if not x.is_dynamic():
            free_for_dynamic = False
        loaded_model = LoadedModel(x)
        if loaded_model in current_loaded_models:
            loaded = current_loaded_models[current_loaded_models.index(loaded_model)]
            loaded.currently_used = True
            models_to_load.append(loaded)
        else:
            models_to_load.append(loaded_model)
    for loaded_model in models_to_load:
        # (a model already loaded is its own clone: popped too, then loaded again)
        for i in [i for i, m in enumerate(current_loaded_models) if loaded_model.model.is_clone(m.model)][::-1]:
            old = current_loaded_models.pop(i)
            old.model.detach(unpatch_all=False)
            old.model_finalizer.detach()
    total_memory_required = {}
    total_pins_required = {}
    for loaded_model in models_to_load:
        device = loaded_model.device
        total_memory_required[device] = (total_memory_required.get(device, 0)
                                         + loaded_model.model_memory_required(device))
        if not loaded_model.model.is_dynamic():
            total_pins_required[device] = total_pins_required.get(device, 0) + loaded_model.model_memory()
    for device in total_memory_required:
        if device != torch.device("cpu"):
            free_memory(total_memory_required[device] * 1.1 + extra_mem, device, for_dynamic=free_for_dynamic,
                        pins_required=total_pins_required.get(device, 0))
    for device in total_memory_required:
        if device != torch.device("cpu") and get_free_memory(device) < minimum_memory_required:
            free_memory(minimum_memory_required, device, for_dynamic=free_for_dynamic)
    for loaded_model in models_to_load:
        loaded_model.model_load(0, force_patch_weights)
        current_loaded_models.insert(0, loaded_model)


def unload_model_and_clones(model, unload_additional_models=True, all_devices=False):
    # 0.33.0: unload `model` and every loaded clone of it (multigpu deep clones)
    for i in [i for i, m in enumerate(current_loaded_models) if m.model is not None and model.is_clone(m.model)][::-1]:
        if current_loaded_models[i].model_unload():
            current_loaded_models.pop(i)


def load_model_gpu(model):
    return load_models_gpu([model])


def soft_empty_cache(force=False):
    CALLS.append("soft_empty_cache")
    EMPTY_CACHE_COUNT[0] += 1


def unload_all_models():
    CALLS.append("unload_all_models")
    free_memory(1e30, get_torch_device())
