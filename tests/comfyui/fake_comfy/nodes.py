"""ComfyUI-shaped loader nodes: V1 node classes as in ComfyUI's nodes.py, and the
V3 ones ComfyUI 0.33.0 keeps in comfy_extras/ (TripleCLIPLoader,
QuadrupleCLIPLoader), registered the way 0.33.0's nodes.py registers them."""
import asyncio
import importlib
import importlib.util
import inspect
import logging
import os
import sys
import traceback

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
    UNETLoader, CLIPLoader, DualCLIPLoader, VAELoader, CheckpointLoaderSimple, ControlNetLoader,
    LoraLoaderModelOnly, RunModel)}
NODE_DISPLAY_NAME_MAPPINGS = {}


# Custom-node loading as in ComfyUI 0.33.0 nodes.py (get_module_name,
# load_custom_node, init_external_custom_nodes, init_builtin_extra_nodes):
# the same signatures, the same import by file path under the same
# sys.modules name, the same merge into the global mappings right after each
# import, and init_external_custom_nodes calls load_custom_node through this
# module's global name in os.listdir order (what distorch's late_nodes.py
# wraps). Not modelled: pyproject/web directories, the manager policy,
# --disable-all-custom-nodes and the import-time report.
LOADED_MODULE_DIRS = {}


def get_module_name(module_path: str) -> str:
    base_path = os.path.basename(module_path)
    if os.path.isfile(module_path):
        base_path = os.path.splitext(base_path)[0]
    return base_path


async def load_custom_node(module_path: str, ignore=set(), module_parent="custom_nodes") -> bool:
    """0.33.0: imports a custom node from its file or directory; its
    NODE_CLASS_MAPPINGS (V1 and V3 classes alike, keyed by the mapping's name,
    names in `ignore` left out) wins; else its comfy_entrypoint()
    ComfyExtension lists V3 classes, each registered under its schema's
    node_id after GET_SCHEMA() (which caches the schema's fields on the class).
    A failing import is logged and answers False."""
    from comfy_api.latest import ComfyExtension
    module_name = get_module_name(module_path)
    if os.path.isfile(module_path):
        module_name = sys_module_name = os.path.splitext(module_path)[0]
    else:
        sys_module_name = module_path.replace(".", "_x_")
    try:
        if os.path.isfile(module_path):
            module_spec = importlib.util.spec_from_file_location(sys_module_name, module_path)
            module_dir = os.path.split(module_path)[0]
        else:
            module_spec = importlib.util.spec_from_file_location(
                sys_module_name, os.path.join(module_path, "__init__.py"))
            module_dir = module_path
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[sys_module_name] = module
        module_spec.loader.exec_module(module)
        LOADED_MODULE_DIRS[module_name] = os.path.abspath(module_dir)

        mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
        if mappings is not None:
            for node_name, node_cls in mappings.items():
                if node_name not in ignore:
                    NODE_CLASS_MAPPINGS[node_name] = node_cls
                    node_cls.RELATIVE_PYTHON_MODULE = f"{module_parent}.{get_module_name(module_path)}"
            if getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) is not None:
                NODE_DISPLAY_NAME_MAPPINGS.update(module.NODE_DISPLAY_NAME_MAPPINGS)
            return True
        entrypoint = getattr(module, "comfy_entrypoint", None)
        if entrypoint is None:
            logging.warning("Skip %s module for custom nodes due to the lack of NODE_CLASS_MAPPINGS "
                            "or comfy_entrypoint (need one).", module_path)
            return False
        extension = await entrypoint() if inspect.iscoroutinefunction(entrypoint) else entrypoint()
        if not isinstance(extension, ComfyExtension):
            return False
        await extension.on_load()
        for node_cls in await extension.get_node_list():
            schema = node_cls.GET_SCHEMA()
            if schema.node_id not in ignore:
                NODE_CLASS_MAPPINGS[schema.node_id] = node_cls
                node_cls.RELATIVE_PYTHON_MODULE = f"{module_parent}.{get_module_name(module_path)}"
            if schema.display_name is not None:
                NODE_DISPLAY_NAME_MAPPINGS[schema.node_id] = schema.display_name
        return True
    except Exception as e:
        logging.warning(traceback.format_exc())
        logging.warning(f"Cannot import {module_path} module for custom nodes: {e}")
        return False


async def init_external_custom_nodes():
    """0.33.0: every custom_nodes entry in os.listdir order (not sorted), names
    that exist before any custom node (built-in ones) protected."""
    base_node_names = set(NODE_CLASS_MAPPINGS.keys())
    for custom_node_path in folder_paths.get_folder_paths("custom_nodes"):
        possible_modules = os.listdir(os.path.realpath(custom_node_path))
        if "__pycache__" in possible_modules:
            possible_modules.remove("__pycache__")
        for possible_module in possible_modules:
            module_path = os.path.join(custom_node_path, possible_module)
            if os.path.isfile(module_path) and os.path.splitext(module_path)[1] != ".py":
                continue
            if module_path.endswith(".disabled"):
                continue
            await load_custom_node(module_path, base_node_names, module_parent="custom_nodes")


async def init_builtin_extra_nodes() -> None:
    """0.33.0 loads comfy_extras/ files by path (V3 loaders among them) before
    any custom node."""
    extras_dir = os.path.join(os.path.dirname(os.path.realpath(__file__)), "comfy_extras")
    for extra in ("nodes_sd3.py", "nodes_hidream.py"):
        await load_custom_node(os.path.join(extras_dir, extra), module_parent="comfy_extras")


asyncio.run(init_builtin_extra_nodes())
