"""CheckpointLoaderAdvancedMultiGPU and CheckpointLoaderAdvancedDisTorch2MultiGPU:
one checkpoint file, separate UNet / CLIP / VAE devices (and, for DisTorch2,
separate UNet and CLIP allocations).

Inputs as ComfyUI-MultiGPU 2.6.3 `checkpoint_multigpu.py` declares them. The
checkpoint is one file, so it is one broker load with one placement: the UNet's
(compute device and allocation: the UNet is nearly all of a checkpoint's
bytes). The CLIP computes on its own device (ComfyUI's text_encoder_device) and
the VAE on its own (vae_device, extra_devices.py); their weights are
where the checkpoint's placement put them, and ComfyUI casts them to their
compute device at forward. A CLIP allocation (clip_virtual_vram_gb > 0 or a
clip expert string) is therefore not applied on its own: the log says so.
`high_precision_loras` is accepted and has no effect (distorch patches LoRAs
into this process's copies at the weight's precision).
"""

from __future__ import annotations

import logging
from typing import Optional

from .. import devices, nodes
from ..registry import REGISTRY
from . import extra_devices, families, request, translate

logger = logging.getLogger(__name__)

def _ckpt_input(stock_cls) -> tuple:
    return stock_cls.INPUT_TYPES()["required"]["ckpt_name"]


class _Plan:
    """What one advanced checkpoint node asks for: the UNet's request (the
    checkpoint's one placement), where CLIP and VAE compute, and run_broker's
    keyword set (which also keys the change token)."""

    def __init__(self, unet: translate.BrokerRequest, clip_compute: str, vae: str, ckpt_name: str,
                 unique_id: Optional[str], clip_note: str = "") -> None:
        self.unet, self.clip_compute, self.vae, self.clip_note = unet, clip_compute, vae, clip_note
        self.kwargs = dict(ckpt_name=ckpt_name, clip_compute=clip_compute, vae_device=vae,
                           compute_device=unet.compute, virtual_vram_gb=0.0,
                           expert_mode_allocations=unet.allocation, keep_loaded=unet.keep_loaded)
        if unique_id is not None:
            self.kwargs["unique_id"] = unique_id


def _advanced_plan(ckpt_name, unet_device, clip_device, vae_device, unique_id=None) -> _Plan:
    return _Plan(translate.device_only(unet_device), clip_device, vae_device, ckpt_name, unique_id)


def _distorch2_plan(ckpt_name, unet_compute_device, unet_virtual_vram_gb, unet_donor_device,
                    clip_compute_device, clip_virtual_vram_gb, clip_donor_device, vae_device,
                    unet_expert_mode_allocations="", clip_expert_mode_allocations="",
                    high_precision_loras=True, eject_models=True, unique_id=None) -> _Plan:
    unet = translate.distorch2(unet_compute_device, unet_virtual_vram_gb, unet_donor_device,
                               unet_expert_mode_allocations, eject_models)
    clip = translate.distorch2(clip_compute_device, clip_virtual_vram_gb, clip_donor_device,
                               clip_expert_mode_allocations, eject_models)
    note = ""
    if clip.allocation:
        note = (f"the CLIP allocation {clip.allocation!r} is not applied on its own: its weights "
                f"follow the checkpoint's placement and are cast to {clip.compute} at forward")
    return _Plan(unet, clip.compute, vae_device, ckpt_name, unique_id, note)


def _run(stock_cls, node_type: str, plan: _Plan):
    """One broker load of the checkpoint under the UNet's request; CLIP and
    VAE compute where they were asked to."""
    request.log_request(node_type, plan.kwargs.get("unique_id"), plan.unet)
    logger.info("distorch: %s: CLIP computes on %s, VAE on %s (one placement for the whole "
                "checkpoint)%s", node_type, plan.clip_compute, plan.vae,
                f"; {plan.clip_note}" if plan.clip_note else "")

    def stock(inputs: dict):
        with devices.override_devices(text_encoder=devices.torch_device_for(inputs["clip_compute"])), \
                extra_devices.override(vae=devices.torch_device_for(inputs["vae_device"])):
            return getattr(stock_cls, stock_cls.FUNCTION)(stock_cls(), inputs["ckpt_name"])
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
