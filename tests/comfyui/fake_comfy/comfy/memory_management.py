"""ComfyUI 0.33.0 comfy/memory_management.py: only the DynamicVRAM switch.

main.py sets aimdo_enabled = True when comfy-aimdo initialises (and then
CoreModelPatcher = ModelPatcherDynamic); comfy.ops reads it to build Linear and
Embedding lazily (no weight until the state dict is loaded)."""
aimdo_enabled = False
RAM_CACHE_HEADROOM = 0  # 0.33.0: model_management.ensure_pin_budget reads it
