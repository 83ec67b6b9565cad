"""ComfyUI-shaped loader nodes (V1 node classes, as in ComfyUI's nodes.py)."""
import torch

import comfy.model_management
import comfy.sd
import comfy.utils
import folder_paths


class UNETLoader:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"unet_name": (folder_paths.get_filename_list("diffusion_models"),),
                             "weight_dtype": (["default", "fp32", "fp16"],)}}
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_unet"

    def load_unet(self, unet_name, weight_dtype="default"):
        model_options = {}
        if weight_dtype == "fp16":
            model_options["dtype"] = torch.float16
        elif weight_dtype == "fp32":
            model_options["dtype"] = torch.float32
        path = folder_paths.get_full_path_or_raise("diffusion_models", unet_name)
        return (comfy.sd.load_diffusion_model(path, model_options=model_options),)


class CLIPLoader:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"clip_name": (folder_paths.get_filename_list("text_encoders"),),
                             "type": (["stable_diffusion", "flux"],)},
                "optional": {"device": (["default", "cpu"], {"advanced": True})}}
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load_clip"

    def load_clip(self, clip_name, type="stable_diffusion", device="default"):
        model_options = {}
        if device == "cpu":
            model_options["load_device"] = model_options["offload_device"] = torch.device("cpu")
        path = folder_paths.get_full_path_or_raise("text_encoders", clip_name)
        return (comfy.sd.load_clip(ckpt_paths=[path], clip_type=type, model_options=model_options),)


class DualCLIPLoader(CLIPLoader):
    @classmethod
    def INPUT_TYPES(s):
        names = folder_paths.get_filename_list("text_encoders")
        return {"required": {"clip_name1": (names,), "clip_name2": (names,), "type": (["flux"],)},
                "optional": {"device": (["default", "cpu"], {"advanced": True})}}

    def load_clip(self, clip_name1, clip_name2, type="flux", device="default"):
        paths = [folder_paths.get_full_path_or_raise("text_encoders", n) for n in (clip_name1, clip_name2)]
        return (comfy.sd.load_clip(ckpt_paths=paths, clip_type=type),)


class TripleCLIPLoader(CLIPLoader):
    @classmethod
    def INPUT_TYPES(s):
        names = folder_paths.get_filename_list("text_encoders")
        return {"required": {"clip_name1": (names,), "clip_name2": (names,), "clip_name3": (names,)}}

    def load_clip(self, clip_name1, clip_name2, clip_name3):
        paths = [folder_paths.get_full_path_or_raise("text_encoders", n) for n in (clip_name1, clip_name2, clip_name3)]
        return (comfy.sd.load_clip(ckpt_paths=paths),)


class QuadrupleCLIPLoader(CLIPLoader):
    @classmethod
    def INPUT_TYPES(s):
        names = folder_paths.get_filename_list("text_encoders")
        return {"required": {f"clip_name{i}": (names,) for i in range(1, 5)}}

    def load_clip(self, clip_name1, clip_name2, clip_name3, clip_name4):
        paths = [folder_paths.get_full_path_or_raise("text_encoders", n)
                 for n in (clip_name1, clip_name2, clip_name3, clip_name4)]
        return (comfy.sd.load_clip(ckpt_paths=paths),)


class VAELoader:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"vae_name": (folder_paths.get_filename_list("vae"),)}}
    RETURN_TYPES = ("VAE",)
    FUNCTION = "load_vae"

    def load_vae(self, vae_name):
        path = folder_paths.get_full_path_or_raise("vae", vae_name)
        return (comfy.sd.VAE(sd=comfy.utils.load_torch_file(path)),)


class CheckpointLoaderSimple:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"ckpt_name": (folder_paths.get_filename_list("checkpoints"),)}}
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load_checkpoint"

    def load_checkpoint(self, ckpt_name):
        path = folder_paths.get_full_path_or_raise("checkpoints", ckpt_name)
        return comfy.sd.load_checkpoint_guess_config(path)[:3]


class ControlNetLoader:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"control_net_name": (folder_paths.get_filename_list("controlnet"),)}}
    RETURN_TYPES = ("CONTROL_NET",)
    FUNCTION = "load_controlnet"

    def load_controlnet(self, control_net_name):
        path = folder_paths.get_full_path_or_raise("controlnet", control_net_name)
        return (comfy.sd.load_controlnet(path),)


class LoraLoaderModelOnly:
    """LoRA file keys: '<weight key>.lora_up' / '.lora_down'."""
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"model": ("MODEL",), "lora_name": (folder_paths.get_filename_list("loras"),),
                             "strength_model": ("FLOAT", {"default": 1.0})}}
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_lora_model_only"

    def load_lora_model_only(self, model, lora_name, strength_model):
        lora = comfy.utils.load_torch_file(folder_paths.get_full_path_or_raise("loras", lora_name))
        patches = {k[:-len(".lora_up")]: ("lora", (lora[k], lora[k[:-2] + "down"], None))
                   for k in lora if k.endswith(".lora_up")}
        m = model.clone()
        m.add_patches(patches, strength_model)
        return (m,)


class RunModel:
    """Loads a MODEL like a sampler does and runs it on a fixed input."""
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {"model": ("MODEL",)}}
    RETURN_TYPES = ("TENSOR",)
    FUNCTION = "run"

    def run(self, model):
        comfy.model_management.load_models_gpu([model])
        x = torch.linspace(-1, 1, 2 * 4 * 5 * 5).reshape(2, 4, 5, 5).to(model.load_device)
        with torch.no_grad():
            return (model.model(x.to(next(model.model.parameters()).dtype)),)


NODE_CLASS_MAPPINGS = {c.__name__: c for c in (
    UNETLoader, CLIPLoader, DualCLIPLoader, TripleCLIPLoader, QuadrupleCLIPLoader, VAELoader,
    CheckpointLoaderSimple, ControlNetLoader, LoraLoaderModelOnly, RunModel)}
