"""UnetLoaderGGUF(Advanced), shaped like ComfyUI-GGUF's nodes.py
(city96/ComfyUI-GGUF 795e451, 2025-12-18): `gguf_sd_loader` imported by name
into this module, the model built by comfy.sd with GGMLOps as its custom
operations, and the patcher cloned into a GGUFModelPatcher."""
import comfy.model_patcher
import comfy.sd
import folder_paths
import torch

from .loader import gguf_sd_loader
from .ops import GGMLOps


class GGUFModelPatcher(comfy.model_patcher.ModelPatcher):
    patch_on_device = False

    def clone(self, *args, **kwargs):
        src_cls = self.__class__
        self.__class__ = GGUFModelPatcher
        n = super().clone(*args, **kwargs)
        n.__class__ = GGUFModelPatcher
        self.__class__ = src_cls
        n.patch_on_device = getattr(self, "patch_on_device", False)
        return n


class UnetLoaderGGUF:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"unet_name": (folder_paths.get_filename_list("unet_gguf"),)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_unet"
    CATEGORY = "bootleg"
    TITLE = "Unet Loader (GGUF)"

    def load_unet(self, unet_name, dequant_dtype=None, patch_dtype=None, patch_on_device=None):
        ops = GGMLOps()
        if dequant_dtype in ("default", None):
            ops.Linear.dequant_dtype = None
        elif dequant_dtype == "target":
            ops.Linear.dequant_dtype = dequant_dtype
        else:
            ops.Linear.dequant_dtype = getattr(torch, dequant_dtype)
        unet_path = folder_paths.get_full_path("unet", unet_name)
        sd = gguf_sd_loader(unet_path)
        model = comfy.sd.load_diffusion_model_state_dict(sd, model_options={"custom_operations": ops})
        if model is None:
            raise RuntimeError("ERROR: Could not detect model type of: {}".format(unet_path))
        model = GGUFModelPatcher.clone(model)
        model.patch_on_device = patch_on_device
        return (model,)


class UnetLoaderGGUFAdvanced(UnetLoaderGGUF):
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {
            "unet_name": (folder_paths.get_filename_list("unet_gguf"),),
            "dequant_dtype": (["default", "target", "float32", "float16", "bfloat16"],
                              {"default": "default"}),
            "patch_dtype": (["default", "target", "float32", "float16", "bfloat16"],
                            {"default": "default"}),
            "patch_on_device": ("BOOLEAN", {"default": False}),
        }}

    TITLE = "Unet Loader (GGUF/Advanced)"


NODE_CLASS_MAPPINGS = {"UnetLoaderGGUF": UnetLoaderGGUF,
                       "UnetLoaderGGUFAdvanced": UnetLoaderGGUFAdvanced}
