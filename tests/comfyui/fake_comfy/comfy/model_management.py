"""ComfyUI-shaped model management (names and signatures of ComfyUI 0.8.0).

CALLS records every call of the functions distorch patches or relies on, so
tests can check order and that a no-op really called nothing."""
import gc
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


def minimum_inference_memory():  # 0.33.0: 0.8 GiB + reserve (read by MaxSpeed weight hooks)
    return (1024 * 1024 * 1024) * 0.8


def get_free_memory(dev=None, torch_free_too=False):
    return (1 << 34, 0) if torch_free_too else 1 << 34


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


def free_memory(memory_required, device, keep_loaded=[]):
    CALLS.append(("free_memory", str(device), len(keep_loaded)))
    unloaded = []
    for i in range(len(current_loaded_models) - 1, -1, -1):
        m = current_loaded_models[i]
        if m.device == device and m not in keep_loaded and not m.is_dead():
            if m.model_unload(memory_required):
                unloaded.append(current_loaded_models.pop(i))
    if unloaded:
        soft_empty_cache()
    return unloaded


def load_models_gpu(models, memory_required=0, force_patch_weights=False,
                    minimum_memory_required=None, force_full_load=False):
    CALLS.append("load_models_gpu")
    for x in models:
        loaded = LoadedModel(x)
        if loaded in current_loaded_models:
            current_loaded_models[current_loaded_models.index(loaded)].currently_used = True
            continue
        for i in [i for i, m in enumerate(current_loaded_models) if x.is_clone(m.model)][::-1]:
            old = current_loaded_models.pop(i)
            old.model.detach(unpatch_all=False)
            old.model_finalizer.detach()
        loaded.model_load(0 if force_full_load else 1e32, force_patch_weights)
        current_loaded_models.insert(0, loaded)


def load_model_gpu(model):
    return load_models_gpu([model])


def soft_empty_cache(force=False):
    CALLS.append("soft_empty_cache")
    EMPTY_CACHE_COUNT[0] += 1


def unload_all_models():
    CALLS.append("unload_all_models")
    free_memory(1e30, get_torch_device())
