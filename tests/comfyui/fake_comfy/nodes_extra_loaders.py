"""The three stock loaders ComfyUI-MultiGPU wraps that fake nodes.py lacks,
shaped like ComfyUI 0.33.0 nodes.py (CLIPVisionLoader, DiffusersLoader,
DiffControlNetLoader: same inputs, outputs and FUNCTION; the models are the
fake tree's tiny ones). Tests add them to nodes.NODE_CLASS_MAPPINGS."""
import os

import torch

import comfy.model_management as mm
import comfy.model_patcher
import comfy.sd
import comfy.utils
import folder_paths


class ClipVisionModel:
    """0.33.0 comfy/clip_vision.py ClipVisionModel: load_device is
    text_encoder_device(), the patcher holds the vision model."""

    def __init__(self, sd):
        self.load_device = mm.text_encoder_device()
        self.model = comfy.sd.TinyVAE(dtype=comfy.sd._weight_dtype(sd))
        self.patcher = comfy.model_patcher.ModelPatcher(self.model, load_device=self.load_device,
                                                        offload_device=torch.device("cpu"))
        self.model.load_state_dict(sd, strict=False)


class CLIPVisionLoader:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"clip_name": (folder_paths.get_filename_list("clip_vision"),)}}
    RETURN_TYPES = ("CLIP_VISION",)
    FUNCTION = "load_clip"
    CATEGORY = "model/loaders"

    def load_clip(self, clip_name):
        path = folder_paths.get_full_path_or_raise("clip_vision", clip_name)
        return (ClipVisionModel(comfy.utils.load_torch_file(path)),)


class DiffusersLoader:
    """0.33.0: model_path is a folder with model_index.json under
    models/diffusers; comfy.diffusers_load reads unet/, text_encoder/ and vae/."""
    @classmethod
    def _model_paths(cls):
        root = os.path.join(folder_paths.MODELS_DIR, "diffusers")
        if not os.path.isdir(root):
            return []
        return sorted(d for d in os.listdir(root) if os.path.exists(os.path.join(root, d, "model_index.json")))

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_path": (cls._model_paths(),), }}
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load_checkpoint"
    DEPRECATED = True
    CATEGORY = "model/loaders"

    def load_checkpoint(self, model_path, output_vae=True, output_clip=True):
        root = os.path.join(folder_paths.MODELS_DIR, "diffusers", model_path)
        unet = comfy.sd.load_diffusion_model(os.path.join(root, "unet", "diffusion_pytorch_model.safetensors"))
        clip = comfy.sd.load_clip([os.path.join(root, "text_encoder", "model.safetensors")])
        vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(
            os.path.join(root, "vae", "diffusion_pytorch_model.safetensors")))
        return (unet, clip, vae)


class DiffControlNetLoader:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"model": ("MODEL",),
                             "control_net_name": (folder_paths.get_filename_list("controlnet"),)}}
    RETURN_TYPES = ("CONTROL_NET",)
    FUNCTION = "load_controlnet"
    CATEGORY = "model/loaders"

    def load_controlnet(self, model, control_net_name):
        path = folder_paths.get_full_path_or_raise("controlnet", control_net_name)
        return (comfy.sd.load_controlnet(path, model),)


NODE_CLASS_MAPPINGS = {c.__name__: c for c in (CLIPVisionLoader, DiffusersLoader, DiffControlNetLoader)}
