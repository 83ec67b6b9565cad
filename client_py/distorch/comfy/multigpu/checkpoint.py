"""CheckpointLoaderAdvancedMultiGPU and CheckpointLoaderAdvancedDisTorch2MultiGPU:
one checkpoint file, separate UNet / CLIP / VAE devices and (DisTorch2) separate
UNet and CLIP allocations.

Inputs as ComfyUI-MultiGPU 2.6.3 `checkpoint_multigpu.py` declares them. The
checkpoint is loaded as three broker parts of the one file (distorchd's
tensor_prefixes), each a residency of its own with its own compute device and
allocation: the UNet (`model.diffusion_model.` and anything that is neither
text encoder nor VAE), the text encoder (ComfyUI 0.33's checkpoint prefixes:
`cond_stage_model.`, SDXL's `conditioner.embedders.N.*`, `text_encoders.`, ...)
and the VAE (`first_stage_model.`, `vae.`, ...). ComfyUI gets the merged state
dict and builds its three models as from one file. The CLIP computes on its
device (ComfyUI's text_encoder_device) and the VAE on its own (vae_device,
extra_devices.py). `high_precision_loras` is accepted and has no effect
(distorch patches LoRAs into this process's copies at the weight's precision).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Iterable, List, Optional, Sequence, Set, Tuple

from .. import devices, header, loading, nodes
from ..registry import REGISTRY
from . import extra_devices, families, request, translate

logger = logging.getLogger(__name__)

# Text-encoder and VAE tensor prefixes of the checkpoints ComfyUI 0.33 loads
# (comfy/supported_models*.py: text_encoder_key_prefix, vae_key_prefix, and
# the SD2/SDXL process_clip_state_dict renames); the running ComfyUI's own
# lists are added at run time (_comfy_prefixes).
CLIP_PREFIXES = ("cond_stage_model.", "conditioner.embedders.0.transformer.",
                 "conditioner.embedders.0.model.", "conditioner.embedders.1.model.",
                 "text_encoders.", "text_encoder.")
VAE_PREFIXES = ("first_stage_model.", "vae.", "pretransform.model.")
# ComfyUI 0.33 model_detection.unet_prefix_from_state_dict's candidates.
UNET_CANDIDATES = ("model.diffusion_model.", "model.model.", "net.")
MAX_PREFIXES = 64  # distorchd's bound on one part's prefixes


def _ckpt_input(stock_cls) -> tuple:
    return stock_cls.INPUT_TYPES()["required"]["ckpt_name"]


# ---------------------------------------------------------------- the parts

def _comfy_prefixes() -> Tuple[Set[str], Set[str]]:
    """The running ComfyUI's text-encoder and VAE key prefixes (none when it
    has no comfy.supported_models)."""
    te: Set[str] = set()
    vae: Set[str] = set()
    try:
        import comfy.supported_models as sm
    except Exception:
        return te, vae
    for cls in getattr(sm, "models", ()):
        te.update(p for p in getattr(cls, "text_encoder_key_prefix", None) or () if p)
        vae.update(p for p in getattr(cls, "vae_key_prefix", None) or () if p)
    return te, vae


def _unet_prefix(names: Sequence[str]) -> str:
    """Where ComfyUI 0.33 looks for the diffusion model in a checkpoint."""
    counts = {c: sum(1 for n in names if n.startswith(c)) for c in UNET_CANDIDATES}
    top = max(UNET_CANDIDATES, key=lambda c: counts[c])
    return top if counts[top] > 5 else "model."


def _cover(names: Iterable[str], others: Sequence[str], preferred: str) -> List[str]:
    """Short prefixes that select every one of `names` and none of `others`:
    `preferred` (the diffusion model's) for the names under it, else each
    name's shortest dot-separated start ("model_ema.") that begins no other
    name, else the whole name."""
    taken = set()
    for other in others:
        parts = other.split(".")
        taken.update(".".join(parts[:i]) + "." for i in range(1, len(parts)))
    out: List[str] = []
    for name in names:
        if any(name.startswith(p) for p in out):
            continue
        if name.startswith(preferred) and preferred.endswith(".") and preferred not in taken:
            out.append(preferred)
            continue
        parts = name.split(".")
        choice = name
        for i in range(1, len(parts)):
            candidate = ".".join(parts[:i]) + "."
            if candidate not in taken:
                choice = candidate
                break
        out.append(choice)
    return out


def split_checkpoint(names: Sequence[str], unet: loading.LoadOptions,
                     clip: loading.LoadOptions, vae: loading.LoadOptions) -> List[loading.FilePart]:
    """The broker parts of a checkpoint with these tensor names: UNet (and
    everything that is not CLIP or VAE), CLIP, VAE, each with its options.
    [] when the file is better loaded whole (one part only, or more prefixes
    than distorchd takes)."""
    comfy_te, comfy_vae = _comfy_prefixes()
    unet_prefix = _unet_prefix(names)
    role_of = {}
    for role, candidates in (("clip", sorted(set(CLIP_PREFIXES) | comfy_te)),
                             ("vae", sorted(set(VAE_PREFIXES) | comfy_vae))):
        for prefix in candidates:
            if prefix.startswith(unet_prefix) or unet_prefix.startswith(prefix):
                continue  # never carve into the diffusion model
            for n in names:
                if n.startswith(prefix):
                    role_of.setdefault(n, (role, prefix))
    # a prefix is used only when every tensor it selects is its role's
    used = {"clip": [], "vae": []}
    for role, prefix in set(role_of.values()):
        if all(role_of.get(n, ("unet",))[0] == role for n in names if n.startswith(prefix)):
            used[role].append(prefix)
    selected = {n for n in names if any(n.startswith(p) for p in used["clip"] + used["vae"])}
    rest = [n for n in names if n not in selected]
    parts: List[loading.FilePart] = []
    if rest:
        prefixes = _cover(rest, sorted(selected), unet_prefix)
        if len(prefixes) > MAX_PREFIXES:
            logger.warning("distorch: the checkpoint's UNet part needs %d tensor prefixes (at most "
                           "%d): loading the file whole with the UNet's placement",
                           len(prefixes), MAX_PREFIXES)
            return []
        parts.append(loading.FilePart("unet", tuple(prefixes), unet))
    for role, options in (("clip", clip), ("vae", vae)):
        if used[role]:
            parts.append(loading.FilePart(role, tuple(sorted(used[role])), options))
    return parts if len(parts) > 1 else []


class _Plan:
    """What one advanced checkpoint node asks for: the UNet's request (run
    through run_broker), the CLIP's request and the VAE's device (its two
    other parts), and run_broker's keyword set (which also keys the change
    token)."""

    def __init__(self, unet: translate.BrokerRequest, clip: translate.BrokerRequest, vae: str,
                 ckpt_name: str, unique_id: Optional[str]) -> None:
        self.unet, self.clip, self.vae = unet, clip, vae
        self.clip_compute = clip.compute
        self.kwargs = dict(ckpt_name=ckpt_name, clip_compute=clip.compute, vae_device=vae,
                           clip_allocation=clip.allocation,
                           compute_device=unet.compute, virtual_vram_gb=0.0,
                           expert_mode_allocations=unet.allocation, keep_loaded=unet.keep_loaded)
        if unique_id is not None:
            self.kwargs["unique_id"] = unique_id

    def parts_for(self, path: str, options: loading.LoadOptions) -> List[loading.FilePart]:
        """loading.PartsFor: the checkpoint's UNet with the node's options
        (run_broker's), its CLIP and VAE with theirs."""
        if not header.is_safetensors(path):
            return []
        names = list(header.read_safetensors_header(path)[0])
        clip = dataclasses.replace(options, compute_device=self.clip.compute,
                                   allocation=self.clip.allocation)
        vae = dataclasses.replace(options, compute_device=self.vae, allocation="")
        return split_checkpoint(names, options, clip, vae)


def _advanced_plan(ckpt_name, unet_device, clip_device, vae_device, unique_id=None) -> _Plan:
    return _Plan(translate.device_only(unet_device), translate.device_only(clip_device),
                 vae_device, ckpt_name, unique_id)


def _distorch2_plan(ckpt_name, unet_compute_device, unet_virtual_vram_gb, unet_donor_device,
                    clip_compute_device, clip_virtual_vram_gb, clip_donor_device, vae_device,
                    unet_expert_mode_allocations="", clip_expert_mode_allocations="",
                    high_precision_loras=True, eject_models=True, unique_id=None) -> _Plan:
    unet = translate.distorch2(unet_compute_device, unet_virtual_vram_gb, unet_donor_device,
                               unet_expert_mode_allocations, eject_models)
    clip = translate.distorch2(clip_compute_device, clip_virtual_vram_gb, clip_donor_device,
                               clip_expert_mode_allocations, eject_models)
    return _Plan(unet, clip, vae_device, ckpt_name, unique_id)


def _run(stock_cls, node_type: str, plan: _Plan):
    """The checkpoint as three broker parts (UNet under run_broker's request,
    CLIP and VAE with their own); CLIP and VAE compute where they were asked
    to."""
    request.log_request(node_type, plan.kwargs.get("unique_id"), plan.unet)
    clip_alloc = f"allocation {plan.clip.allocation!r}" if plan.clip.allocation else "all on compute"
    logger.info("distorch: %s: CLIP: compute %s, %s%s; VAE: all on %s (each a broker part of "
                "the checkpoint)", node_type, plan.clip.compute, clip_alloc,
                f" ({plan.clip.note})" if plan.clip.note else "", plan.vae)

    def stock(inputs: dict):
        with devices.override_devices(text_encoder=devices.torch_device_for(inputs["clip_compute"])), \
                extra_devices.override(vae=devices.torch_device_for(inputs["vae_device"])):
            return getattr(stock_cls, stock_cls.FUNCTION)(stock_cls(), inputs["ckpt_name"])
    with loading.in_parts(plan.parts_for):
        return nodes.run_broker(stock, node_type, "checkpoint", dict(plan.kwargs))


def make_advanced(stock_cls) -> type:
    """CheckpointLoaderAdvancedMultiGPU: unet_device, clip_device, vae_device."""
    node_type = "CheckpointLoaderAdvancedMultiGPU"

    class Node:
        @classmethod
        def INPUT_TYPES(cls):
            choices, default = families.device_choices(nodes.device_names(True))
            return {"required": {"ckpt_name": _ckpt_input(stock_cls),
                                 "unet_device": (choices, {"default": default}),
                                 "clip_device": (choices, {"default": default}),
                                 "vae_device": (choices, {"default": default})},
                    "hidden": {"unique_id": "UNIQUE_ID"}}

        RETURN_TYPES = ("MODEL", "CLIP", "VAE")
        FUNCTION = "load_checkpoint"
        CATEGORY = "multigpu"

        @classmethod
        def IS_CHANGED(cls, **kwargs):
            return REGISTRY.change_token(node_type, _advanced_plan(**kwargs).kwargs)

        def load_checkpoint(self, **kwargs):
            return _run(stock_cls, node_type, _advanced_plan(**kwargs))

    Node.__name__ = Node.__qualname__ = node_type
    return Node


def make_advanced_distorch2(stock_cls) -> type:
    """CheckpointLoaderAdvancedDisTorch2MultiGPU: UNet and CLIP allocations."""
    node_type = "CheckpointLoaderAdvancedDisTorch2MultiGPU"

    class Node:
        @classmethod
        def INPUT_TYPES(cls):
            choices, default = families.device_choices(nodes.device_names(True))
            vram = {"min": 0.0, "max": 128.0, "step": 0.1}
            return {"required": {"ckpt_name": _ckpt_input(stock_cls),
                                 "unet_compute_device": (choices, {"default": default}),
                                 "unet_virtual_vram_gb": ("FLOAT", {"default": 4.0, **vram}),
                                 "unet_donor_device": (choices, {"default": "cpu"}),
                                 "clip_compute_device": (choices, {"default": "cpu"}),
                                 "clip_virtual_vram_gb": ("FLOAT", {"default": 2.0, **vram}),
                                 "clip_donor_device": (choices, {"default": "cpu"}),
                                 "vae_device": (choices, {"default": default})},
                    "optional": {"unet_expert_mode_allocations": ("STRING", {"multiline": False, "default": ""}),
                                 "clip_expert_mode_allocations": ("STRING", {"multiline": False, "default": ""}),
                                 "high_precision_loras": ("BOOLEAN", {"default": True}),
                                 "eject_models": ("BOOLEAN", {"default": True})},
                    "hidden": {"unique_id": "UNIQUE_ID"}}

        RETURN_TYPES = ("MODEL", "CLIP", "VAE")
        FUNCTION = "load_checkpoint"
        CATEGORY = "multigpu/distorch_2"

        @classmethod
        def IS_CHANGED(cls, **kwargs):
            return REGISTRY.change_token(node_type, _distorch2_plan(**kwargs).kwargs)

        def load_checkpoint(self, **kwargs):
            return _run(stock_cls, node_type, _distorch2_plan(**kwargs))

    Node.__name__ = Node.__qualname__ = node_type
    return Node
