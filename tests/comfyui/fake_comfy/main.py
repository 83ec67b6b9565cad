"""The /free part of ComfyUI's prompt_worker loop (main.py), same order."""
import gc

import comfy.model_management


def free_flow(executor, unload_models=False, free_memory=False):
    flags = {}
    if unload_models:
        flags["unload_models"] = True
    if free_memory:
        flags["free_memory"] = True
    if flags.get("unload_models", free_memory):
        comfy.model_management.unload_all_models()
    if free_memory:
        executor.reset()
    gc.collect()
    comfy.model_management.soft_empty_cache()
