"""MultiGPU's names for third-party packs' nodes, registered when the pack's
node is loaded in this ComfyUI.

Read from ComfyUI-MultiGPU 2.6.3 `__init__.py` (the `register_and_count`
tables) and `wrappers.py`: every one is a device selector over the pack's own
node (`override_class`: an optional `device` input; `override_class_offload`:
`device` and `offload_device`, default cpu). These packs load their weights
with their own code (transformers, accelerate, their own file readers), which
distorch does not intercept, so these nodes do what MultiGPU's did: run the
pack's node with ComfyUI's device questions (get_torch_device, and
unet_offload_device for offload_device) answering the chosen devices. The
weights are the pack's own, not broker memory.

ComfyUI-WanVideoWrapper's twenty MultiGPU nodes, whose inputs and outputs
MultiGPU rewrote node by node, are in wanvideo.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

from .. import devices, nodes
from . import extra_devices, families


@dataclass(frozen=True)
class PackNode:
    name: str      # MultiGPU's class name
    base: str      # the pack's NODE_CLASS_MAPPINGS name
    pack: str      # the pack's repository name (for the log)
    offload: bool  # override_class_offload: also offload_device


PACK_NODES: List[PackNode] = [
    PackNode("LTXVLoaderMultiGPU", "LTXVLoader", "ComfyUI-LTXVideo", False),
    PackNode("Florence2ModelLoaderMultiGPU", "Florence2ModelLoader", "ComfyUI-Florence2", True),
    PackNode("DownloadAndLoadFlorence2ModelMultiGPU", "DownloadAndLoadFlorence2Model",
             "ComfyUI-Florence2", True),
    PackNode("CheckpointLoaderNF4MultiGPU", "CheckpointLoaderNF4", "ComfyUI_bitsandbytes_NF4", False),
    PackNode("LoadFluxControlNetMultiGPU", "LoadFluxControlNet", "x-flux-comfyui", False),
    PackNode("MMAudioModelLoaderMultiGPU", "MMAudioModelLoader", "ComfyUI-MMAudio", False),
    PackNode("MMAudioFeatureUtilsLoaderMultiGPU", "MMAudioFeatureUtilsLoader", "ComfyUI-MMAudio", False),
    PackNode("MMAudioSamplerMultiGPU", "MMAudioSampler", "ComfyUI-MMAudio", False),
    PackNode("PulidModelLoaderMultiGPU", "PulidModelLoader", "PuLID_ComfyUI", False),
    PackNode("PulidInsightFaceLoaderMultiGPU", "PulidInsightFaceLoader", "PuLID_ComfyUI", False),
    PackNode("PulidEvaClipLoaderMultiGPU", "PulidEvaClipLoader", "PuLID_ComfyUI", False),
]


def _pack_inputs(stock_inputs: dict, offload: bool) -> dict:
    inputs = families.add_v1_inputs(stock_inputs, families.FAMILIES["device"], nodes.device_names(False))
    if offload:
        inputs["optional"]["offload_device"] = (list(inputs["optional"]["device"][0]), {"default": "cpu"})
    return inputs


def make_pack_node(stock_cls: type, entry: PackNode) -> type:
    class Node(stock_cls):
        @classmethod
        def INPUT_TYPES(cls):
            return _pack_inputs(stock_cls.INPUT_TYPES(), entry.offload)

        FUNCTION = "distorch_multigpu_device"
        CATEGORY = "multigpu"

        def distorch_multigpu_device(self, device=None, offload_device=None, **kwargs):
            _, default = families.device_choices(nodes.device_names(False))
            target = devices.torch_device_for(device or default)
            offload = devices.torch_device_for(offload_device) if offload_device else None
            with devices.override_devices(model=target), extra_devices.override(unet_offload=offload):
                return getattr(stock_cls, stock_cls.FUNCTION)(self, **kwargs)

    Node.__name__ = Node.__qualname__ = entry.name
    return Node


def build(stock_mappings: Dict[str, type]) -> Tuple[Dict[str, type], List[str]]:
    """({MultiGPU name: class}, packs found) for the packs whose nodes are loaded."""
    classes: Dict[str, type] = {}
    found: List[str] = []
    for entry in PACK_NODES:
        stock_cls = stock_mappings.get(entry.base)
        if stock_cls is None or not hasattr(stock_cls, "INPUT_TYPES"):
            continue
        classes[entry.name] = make_pack_node(stock_cls, entry)
        if entry.pack not in found:
            found.append(entry.pack)
    return classes, found
