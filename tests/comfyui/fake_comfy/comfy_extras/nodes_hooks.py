"""ComfyUI-shaped hook nodes: CreateHookLora and SetClipHooks of ComfyUI 0.33.0
comfy_extras/nodes_hooks.py (V1 classes, registered by NodeId). The text
encode that follows (CLIPTextEncode) loads the CLIP, whose load applies the
forced hooks: ModelPatcher.load -> apply_hooks -> patch_hooks ->
patch_hook_weight_to_device."""
import comfy.hooks
import comfy.utils
import folder_paths


class CreateHookLora:
    NodeId = "CreateHookLora"
    NodeName = "Create Hook LoRA"

    def __init__(self):
        self.loaded_lora = None

    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"lora_name": (folder_paths.get_filename_list("loras"),),
                             "strength_model": ("FLOAT", {"default": 1.0}),
                             "strength_clip": ("FLOAT", {"default": 1.0})},
                "optional": {"prev_hooks": ("HOOKS",)}}
    RETURN_TYPES = ("HOOKS",)
    FUNCTION = "create_hook"

    def create_hook(self, lora_name, strength_model, strength_clip, prev_hooks=None):
        if prev_hooks is None:
            prev_hooks = comfy.hooks.HookGroup()
        if strength_model == 0 and strength_clip == 0:
            return (prev_hooks,)
        lora_path = folder_paths.get_full_path("loras", lora_name)
        lora = None
        if self.loaded_lora is not None and self.loaded_lora[0] == lora_path:
            lora = self.loaded_lora[1]
        if lora is None:
            lora = comfy.utils.load_torch_file(lora_path, safe_load=True)
            self.loaded_lora = (lora_path, lora)
        hooks = comfy.hooks.create_hook_lora(lora=lora, strength_model=strength_model, strength_clip=strength_clip)
        return (prev_hooks.clone_and_combine(hooks),)


class SetClipHooks:
    NodeId = "SetClipHooks"
    NodeName = "Set CLIP Hooks"

    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"clip": ("CLIP",), "apply_to_conds": ("BOOLEAN", {"default": True}),
                             "schedule_clip": ("BOOLEAN", {"default": False})},
                "optional": {"hooks": ("HOOKS",)}}
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "apply_hooks"

    # 0.33.0: a clone (disable_dynamic=True) whose patcher gets the hooks as
    # forced_hooks and registers their weight patches for the CLIP target.
    def apply_hooks(self, clip, schedule_clip, apply_to_conds, hooks=None):
        if hooks is not None:
            clip = clip.clone(disable_dynamic=True)
            if apply_to_conds:
                clip.apply_hooks_to_conds = hooks
            clip.patcher.forced_hooks = hooks.clone()
            clip.use_clip_schedule = schedule_clip
            if not clip.use_clip_schedule:
                clip.patcher.forced_hooks.set_keyframes_on_hooks(None)
            clip.patcher.register_all_hook_patches(hooks, comfy.hooks.create_target_dict(
                comfy.hooks.EnumWeightTarget.Clip))
        return (clip,)


NODE_CLASS_MAPPINGS = {n.NodeId: n for n in (CreateHookLora, SetClipHooks)}
NODE_DISPLAY_NAME_MAPPINGS = {n.NodeId: n.NodeName for n in (CreateHookLora, SetClipHooks)}
