"""ComfyUI-shaped save nodes: ModelSave, CLIPSave and CheckpointSave of ComfyUI
0.33.0 comfy_extras/nodes_model_merging.py (V1 classes). Same calls in the same
order; the modelspec/metadata detection (comfy.model_base, comfy.model_sampling,
--disable-metadata) is left out: the fake has no BaseModel."""
import json
import os

import comfy.sd
import comfy.utils
import folder_paths


# 0.33.0 nodes_model_merging.save_checkpoint: one file
# "<prefix>_<counter:05>_.safetensors" through comfy.sd.save_checkpoint.
def save_checkpoint(model, clip=None, vae=None, clip_vision=None, filename_prefix=None, output_dir=None,
                    prompt=None, extra_pnginfo=None):
    full_output_folder, filename, counter, subfolder, filename_prefix = \
        folder_paths.get_save_image_path(filename_prefix, output_dir)
    metadata = {"prompt": json.dumps(prompt) if prompt is not None else ""}
    output_checkpoint = os.path.join(full_output_folder, f"{filename}_{counter:05}_.safetensors")
    comfy.sd.save_checkpoint(output_checkpoint, model, clip, vae, clip_vision, metadata=metadata, extra_keys={})


class CheckpointSave:
    def __init__(self):
        self.output_dir = folder_paths.get_output_directory()

    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"model": ("MODEL",), "clip": ("CLIP",), "vae": ("VAE",),
                             "filename_prefix": ("STRING", {"default": "checkpoints/ComfyUI"})},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True

    def save(self, model, clip, vae, filename_prefix, prompt=None, extra_pnginfo=None):
        save_checkpoint(model, clip=clip, vae=vae, filename_prefix=filename_prefix, output_dir=self.output_dir,
                        prompt=prompt, extra_pnginfo=extra_pnginfo)
        return {}


class CLIPSave:
    """0.33.0: clip.load_model(), clip.state_dict_for_saving(), then one file per
    text encoder prefix ("clip_l.", ..., "" last) with "transformer." dropped."""

    def __init__(self):
        self.output_dir = folder_paths.get_output_directory()

    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"clip": ("CLIP",), "filename_prefix": ("STRING", {"default": "clip/ComfyUI"})},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True

    def save(self, clip, filename_prefix, prompt=None, extra_pnginfo=None):
        metadata = {"format": "pt", "prompt": json.dumps(prompt) if prompt is not None else ""}
        clip.load_model()
        clip_sd = clip.state_dict_for_saving()
        for prefix in ["clip_l.", "clip_g.", "clip_h.", "t5xxl.", "pile_t5xl.", "mt5xl.", "umt5xxl.", "t5base.",
                       "gemma2_2b.", "llama.", "hydit_clip.", ""]:
            current_clip_sd = {x: clip_sd.pop(x) for x in [k for k in clip_sd if k.startswith(prefix)]}
            if len(current_clip_sd) == 0:
                continue
            p = prefix[:-1]
            replace_prefix = {}
            filename_prefix_ = filename_prefix
            if len(p) > 0:
                filename_prefix_ = "{}_{}".format(filename_prefix_, p)
                replace_prefix[prefix] = ""
            replace_prefix["transformer."] = ""
            full_output_folder, filename, counter, subfolder, filename_prefix_ = \
                folder_paths.get_save_image_path(filename_prefix_, self.output_dir)
            output_checkpoint = os.path.join(full_output_folder, f"{filename}_{counter:05}_.safetensors")
            current_clip_sd = comfy.utils.state_dict_prefix_replace(current_clip_sd, replace_prefix)
            comfy.utils.save_torch_file(current_clip_sd, output_checkpoint, metadata=metadata)
        return {}


class ModelSave:
    def __init__(self):
        self.output_dir = folder_paths.get_output_directory()

    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"model": ("MODEL",),
                             "filename_prefix": ("STRING", {"default": "diffusion_models/ComfyUI"})},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True

    def save(self, model, filename_prefix, prompt=None, extra_pnginfo=None):
        save_checkpoint(model, filename_prefix=filename_prefix, output_dir=self.output_dir, prompt=prompt,
                        extra_pnginfo=extra_pnginfo)
        return {}


NODE_CLASS_MAPPINGS = {"CheckpointSave": CheckpointSave, "CLIPSave": CLIPSave, "ModelSave": ModelSave}
NODE_DISPLAY_NAME_MAPPINGS = {"CheckpointSave": "Save Checkpoint"}
