"""Which ComfyUI-MultiGPU node names distorch serves, and from what.

Read from ComfyUI-MultiGPU 2.6.3 (`__init__.py`, the NODE_CLASS_MAPPINGS
block and the GGUF `register_and_count` table): each MultiGPU name wraps one
base loader with one input family (families.py). distorch registers a name
when its base loader is in the running ComfyUI's NODE_CLASS_MAPPINGS.

kind picks the device question ComfyUI asks while the loader builds the model
(nodes.slots_for): model -> get_torch_device, clip -> text_encoder_device,
checkpoint -> both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List


@dataclass(frozen=True)
class MultiGPULoader:
    name: str        # the MultiGPU node class name, as saved in workflows
    base: str        # the wrapped node's NODE_CLASS_MAPPINGS name
    family: str      # families.FAMILIES key
    kind: str        # model | clip | checkpoint


def _core() -> List[MultiGPULoader]:
    # (base, kind, device-only family, DisTorch2 family) as MultiGPU 2.6.3
    # __init__.py wraps them: override_class / override_class_clip /
    # override_class_clip_no_device, and the matching
    # override_class_with_distorch_safetensor_v2{,_clip,_clip_no_device}.
    bases = [
        ("UNETLoader", "model", "device", "distorch2"),
        ("VAELoader", "model", "device", "distorch2"),
        ("CLIPLoader", "clip", "device_clip", "distorch2_clip"),
        ("DualCLIPLoader", "clip", "device_clip", "distorch2_clip"),
        ("TripleCLIPLoader", "clip", "device_clip", "distorch2_clip"),
        ("QuadrupleCLIPLoader", "clip", "device_clip", "distorch2_clip"),
        ("CLIPVisionLoader", "clip", "device_clip", "distorch2_clip"),
        ("CheckpointLoaderSimple", "checkpoint", "device", "distorch2"),
        ("ControlNetLoader", "model", "device", "distorch2"),
        ("DiffusersLoader", "checkpoint", "device", "distorch2"),
        ("DiffControlNetLoader", "model", "device", "distorch2"),
    ]
    out = [MultiGPULoader(f"{b}MultiGPU", b, dev, kind) for b, kind, dev, _ in bases]
    out += [MultiGPULoader(f"{b}DisTorch2MultiGPU", b, d2, kind) for b, kind, _, d2 in bases]
    return out


def _gguf() -> List[MultiGPULoader]:
    # MultiGPU 2.6.3 __init__.py gguf_nodes: legacy DisTorch (v1 inputs,
    # override_class_with_distorch_gguf / _clip / _clip_no_device), DisTorch2
    # and device-only, for ComfyUI-GGUF's six loaders.
    bases = [("UnetLoaderGGUF", "model"), ("UnetLoaderGGUFAdvanced", "model"),
             ("CLIPLoaderGGUF", "clip"), ("DualCLIPLoaderGGUF", "clip"),
             ("TripleCLIPLoaderGGUF", "clip"), ("QuadrupleCLIPLoaderGGUF", "clip")]
    out = []
    for b, kind in bases:
        clip = kind == "clip"
        out.append(MultiGPULoader(f"{b}DisTorchMultiGPU", b, "legacy_clip" if clip else "legacy", kind))
        out.append(MultiGPULoader(f"{b}DisTorch2MultiGPU", b,
                                  "distorch2_clip" if clip else "distorch2", kind))
        out.append(MultiGPULoader(f"{b}MultiGPU", b, "device_clip" if clip else "device", kind))
    return out


CORE_LOADERS: List[MultiGPULoader] = _core()
GGUF_LOADERS: List[MultiGPULoader] = _gguf()
