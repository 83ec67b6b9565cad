"""Loaders for a tiny ComfyUI-shaped architecture (UNet, text encoder, VAE).

Like ComfyUI: the loaders read the file with comfy.utils.load_torch_file, build
the model from comfy.ops layers, copy the weights in with load_state_dict, and
wrap it in a ModelPatcher whose load device comes from model_management."""
import inspect

import torch

import comfy.hooks
import comfy.model_management as mm
import comfy.model_patcher
import comfy.ops
import comfy.utils

UNET_PREFIX = "model.diffusion_model."
CLIP_PREFIX = "cond_stage_model."
VAE_PREFIX = "first_stage_model."


class TinyBlock(torch.nn.Module):
    def __init__(self, ops, dtype, device, width=8):
        super().__init__()
        self.proj = ops.Linear(width, width, dtype=dtype, device=device)

    def forward(self, h):
        return h + torch.tanh(self.proj(h))


class TinyUNet(torch.nn.Module):
    """conv_in -> pool -> + pos_embed (a raw parameter ComfyUI cannot stream)
    -> blocks -> out."""

    def __init__(self, dtype=None, device=None, operations=comfy.ops.disable_weight_init, width=8):
        super().__init__()
        self.conv_in = operations.Conv2d(4, width, 3, padding=1, dtype=dtype, device=device)
        self.pos_embed = torch.nn.Parameter(torch.empty(1, width, dtype=dtype, device=device))
        self.blocks = torch.nn.ModuleList([TinyBlock(operations, dtype, device, width) for _ in range(3)])
        self.out = operations.Linear(width, 4, dtype=dtype, device=device)

    def forward(self, x):
        h = self.conv_in(x).mean(dim=(2, 3)) + self.pos_embed
        for block in self.blocks:
            h = block(h)
        return self.out(h)


class TinyTextEncoder(torch.nn.Module):
    """embed (torch.nn.Embedding: not a comfy op) -> qkv -> proj. The file
    stores q, k and v apart; the loader concatenates them (key conversion)."""

    def __init__(self, dtype=None, device=None, operations=comfy.ops.manual_cast):
        super().__init__()
        self.embed = torch.nn.Embedding(16, 8, dtype=dtype, device=device)
        self.qkv = operations.Linear(8, 24, dtype=dtype, device=device)
        self.proj = operations.Linear(24, 8, dtype=dtype, device=device)

    def forward(self, tokens):
        return self.proj(self.qkv(self.embed(tokens))).mean(dim=1)

    @staticmethod
    def convert(sd):
        if "q.weight" in sd:
            sd["qkv.weight"] = torch.cat([sd.pop("q.weight"), sd.pop("k.weight"), sd.pop("v.weight")])
        return sd


class TinyVAE(torch.nn.Module):
    def __init__(self, dtype=None, device=None, operations=comfy.ops.disable_weight_init):
        super().__init__()
        self.dec = operations.Conv2d(4, 3, 1, dtype=dtype, device=device)

    def decode(self, z):
        return self.dec(z)


def _weight_dtype(sd):
    for t in sd.values():
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def _load_state_dict(module, sd, assign):
    # ComfyUI 0.33.0 loads with load_state_dict(sd, strict=False,
    # assign=patcher.is_dynamic()); torch < 2.1 has no assign (ComfyUI 0.33
    # needs torch 2), so there the fake loads the classic way.
    if assign and "assign" in inspect.signature(torch.nn.Module.load_state_dict).parameters:
        return module.load_state_dict(sd, strict=False, assign=True)
    return module.load_state_dict(sd, strict=False)


def _patcher_class(disable_dynamic):
    # 0.33.0 comfy/sd.py: ModelPatcher if disable_dynamic else CoreModelPatcher
    return comfy.model_patcher.ModelPatcher if disable_dynamic else comfy.model_patcher.CoreModelPatcher


def load_diffusion_model_state_dict(sd, model_options={}, metadata=None, disable_dynamic=False):
    temp = comfy.utils.state_dict_prefix_replace(sd, {UNET_PREFIX: ""}, filter_keys=True)
    if len(temp) > 0:
        sd = temp
    if "conv_in.weight" not in sd:
        return None
    dtype = model_options.get("dtype") or _weight_dtype(sd)
    load_device = mm.get_torch_device()
    offload_device = mm.unet_offload_device()
    # Like ComfyUI: custom_operations (ComfyUI-GGUF's GGMLOps) replace the
    # default ops; the width comes from the weights (GGUF tests use 256).
    operations = model_options.get("custom_operations") or comfy.ops.disable_weight_init
    model = TinyUNet(dtype=dtype, operations=operations, width=sd["conv_in.weight"].shape[0])
    mm.archive_model_dtypes(model)  # 0.33.0 BaseModel.__init__
    model_patcher = _patcher_class(disable_dynamic)(model, load_device=load_device, offload_device=offload_device)
    model = model.to(offload_device)
    _load_state_dict(model, sd, assign=model_patcher.is_dynamic())  # 0.33.0 load_model_weights
    return model_patcher


def load_diffusion_model(unet_path, model_options={}, disable_dynamic=False):
    sd, metadata = comfy.utils.load_torch_file(unet_path, return_metadata=True)
    model = load_diffusion_model_state_dict(sd, model_options=model_options, metadata=metadata,
                                            disable_dynamic=disable_dynamic)
    if model is None:
        raise RuntimeError("ERROR: Could not detect model type of: {}".format(unet_path))
    model.cached_patcher_init = (load_diffusion_model, (unet_path, model_options))  # 0.33.0
    return model


class CLIP:
    def __init__(self, state_dicts=(), model_options={}, disable_dynamic=False):
        load_device = model_options.get("load_device", mm.text_encoder_device())
        offload_device = mm.text_encoder_offload_device()
        initial = mm.text_encoder_initial_device(load_device, offload_device, 0)
        encoders = [TinyTextEncoder(dtype=_weight_dtype(sd), device=initial) for sd in state_dicts]
        self.cond_stage_model = torch.nn.ModuleList(encoders)
        mm.archive_model_dtypes(self.cond_stage_model)
        # 0.33.0 CLIP.__init__: patcher first, compute dtype float32, then
        # load_sd with assign=patcher.is_dynamic().
        self.patcher = _patcher_class(disable_dynamic)(self.cond_stage_model, load_device=load_device,
                                                       offload_device=offload_device)
        self.patcher.set_model_compute_dtype(torch.float32)
        for encoder, sd in zip(encoders, state_dicts):
            _load_state_dict(encoder, TinyTextEncoder.convert(sd), assign=self.patcher.is_dynamic())
        self.patcher.hook_mode = comfy.hooks.EnumHookMode.MinVram  # 0.33.0 CLIP.__init__
        self.patcher.is_clip = True
        if initial == load_device:
            mm.load_models_gpu([self.patcher], force_full_load=True)

    def clone(self, disable_dynamic=False):  # 0.33.0 signature (SetClipHooks passes True)
        n = CLIP.__new__(CLIP)
        n.cond_stage_model = self.cond_stage_model
        n.patcher = self.patcher.clone(disable_dynamic=disable_dynamic)
        return n

    # 0.33.0 CLIP.load_model / state_dict_for_saving (no tokenizer state here).
    def load_model(self, tokens={}):
        mm.load_models_gpu([self.patcher])
        return self.patcher

    def state_dict_for_saving(self):
        return self.patcher.model_state_dict_for_saving()

    def encode(self, tokens):
        mm.load_models_gpu([self.patcher])
        return torch.stack([e(tokens.to(self.patcher.load_device)) for e in self.cond_stage_model]).sum(0)


def load_text_encoder_state_dicts(state_dicts=[], embedding_directory=None, clip_type=None, model_options={},
                                  disable_dynamic=False):
    return CLIP(state_dicts, model_options, disable_dynamic=disable_dynamic)


def load_clip_model_patcher(ckpt_paths, embedding_directory=None, clip_type=None, model_options={},
                            disable_dynamic=False):  # 0.33.0: the CLIP's cached_patcher_init
    return load_clip(ckpt_paths, embedding_directory, clip_type, model_options, disable_dynamic).patcher


def load_clip(ckpt_paths, embedding_directory=None, clip_type=None, model_options={}, disable_dynamic=False):
    clip_data = [comfy.utils.load_torch_file(p, safe_load=True) for p in ckpt_paths]
    clip = load_text_encoder_state_dicts(clip_data, clip_type=clip_type, model_options=model_options,
                                         disable_dynamic=disable_dynamic)
    clip.patcher.cached_patcher_init = (load_clip_model_patcher,
                                        (ckpt_paths, embedding_directory, clip_type, model_options))
    return clip


class VAE:
    def __init__(self, sd=None, device=None):
        self.first_stage_model = TinyVAE(dtype=_weight_dtype(sd))
        self.device = device or mm.vae_device()
        self.first_stage_model.to(_weight_dtype(sd))
        mm.archive_model_dtypes(self.first_stage_model)
        # 0.33.0 VAE.__init__: CoreModelPatcher, then load_state_dict(assign=is_dynamic())
        self.patcher = comfy.model_patcher.CoreModelPatcher(self.first_stage_model, load_device=self.device,
                                                            offload_device=torch.device("cpu"))
        _load_state_dict(self.first_stage_model, sd, assign=self.patcher.is_dynamic())

    def decode(self, z):
        mm.load_models_gpu([self.patcher])
        return self.first_stage_model.decode(z.to(self.device))

    def get_sd(self):
        return self.first_stage_model.state_dict()


class ControlNet:
    def __init__(self, sd):
        model = TinyVAE(dtype=_weight_dtype(sd))
        model.load_state_dict(sd, strict=False)
        self.control_model = model
        self.control_model_wrapped = comfy.model_patcher.ModelPatcher(
            model, load_device=mm.get_torch_device(), offload_device=torch.device("cpu"))


def load_controlnet(ckpt_path, model=None, model_options={}):
    return ControlNet(comfy.utils.load_torch_file(ckpt_path, safe_load=True))


def load_checkpoint_guess_config(ckpt_path, output_vae=True, output_clip=True, output_clipvision=False,
                                 embedding_directory=None, output_model=True, model_options={},
                                 te_model_options={}):
    sd, metadata = comfy.utils.load_torch_file(ckpt_path, return_metadata=True)
    clip_sd = comfy.utils.state_dict_prefix_replace(dict(sd), {CLIP_PREFIX: ""}, filter_keys=True)
    vae_sd = comfy.utils.state_dict_prefix_replace(dict(sd), {VAE_PREFIX: ""}, filter_keys=True)
    model = load_diffusion_model_state_dict(sd, model_options) if output_model else None
    clip = CLIP([clip_sd]) if output_clip else None
    vae = VAE(sd=vae_sd) if output_vae else None
    return (model, clip, vae, None)


# ComfyUI 0.33.0 comfy/sd.py save_checkpoint: the text encoder is loaded and its
# state dict for saving taken, model and text encoder are loaded with their
# patches, then the model's state dict for saving (a LazyCastingParam for each
# comfy.ops weight not patched in place) goes to save_torch_file.
def save_checkpoint(output_path, model, clip=None, vae=None, clip_vision=None, metadata=None, extra_keys={}):
    clip_sd = None
    load_models = [model]
    if clip is not None:
        load_models.append(clip.load_model())
        clip_sd = clip.state_dict_for_saving()
    vae_sd = None
    if vae is not None:
        vae_sd = vae.get_sd()
    if metadata is None:
        metadata = {}
    mm.load_models_gpu(load_models)
    sd = model.state_dict_for_saving(clip_sd, vae_sd, None)
    for k in extra_keys:
        sd[k] = extra_keys[k]
    for k in sd:
        t = sd[k]
        if not t.is_contiguous():
            sd[k] = t.contiguous()
    comfy.utils.save_torch_file(sd, output_path, metadata=metadata)
