"""ComfyUI-MultiGPU's names for ComfyUI-WanVideoWrapper's nodes (device selection).

MultiGPU 2.6.3 (`wanvideo.py`, registered by its `__init__.py` when
ComfyUI-WanVideoWrapper is installed) serves twenty `<node>MultiGPU` names.
Each runs WanVideoWrapper's own node with a device chosen in the workflow:

- loaders get a device combo (`compute_device`, `device` or `load_device`;
  the block swap node a `swap_device`) and most of them hand the choice on as
  a MULTIGPUDEVICE output;
- the nodes that use a loaded model (text encode, VAE encode/decode, sampler,
  ...) take that MULTIGPUDEVICE as an input (`load_device` or
  `compute_device`) and run there;
- where WanVideoWrapper asks its own device question (the text loaders'
  `load_device` main/offload choice, the text encoders' gpu/cpu `device`),
  MultiGPU takes the input away and answers it from the chosen device.

Through the broker: WanVideoWrapper reads its model files with its own code
(its `load_torch_file` calls, GGUF reader, transformers and accelerate) and
builds its own model objects, not ComfyUI's loaders, so distorchd cannot hold
these weights; these names choose devices, as MultiGPU's did, and the weights
are WanVideoWrapper's own. The first run logs this once.

How the device is chosen: WanVideoWrapper asks
`comfy.model_management.get_torch_device()` at import and keeps the answer in
its node modules' globals `device` and `offload_device` (nodes_model_loading.py,
nodes.py, nodes_sampler.py), and some code asks again at run time. A run
answers both with the chosen device: `get_torch_device` through
devices.override_devices (this thread), the module's `device` (and, where
MultiGPU moved it, `offload_device`) set for the call and put back after it.
ComfyUI runs one prompt at a time, so no other node sees those globals.

Inputs are built from WanVideoWrapper's own INPUT_TYPES (the installed
version's choices) with MultiGPU's changes applied in MultiGPU's places, so
a saved MultiGPU workflow finds the same widgets in the same order.
MultiGPU's loaders return the pack's whole result tuple as the value (its
other WanVideo nodes take `[0]` of it); these return the model itself, and
the nodes that take one accept either, so a distorch-loaded T5 or VAE also
plugs into WanVideoWrapper's own nodes.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from .. import devices, nodes
from . import families

logger = logging.getLogger(__name__)

PACK = "ComfyUI-WanVideoWrapper"
DEVICE_TYPE = "MULTIGPUDEVICE"
CATEGORY = "multigpu/WanVideoWrapper"


@dataclass(frozen=True)
class WanNode:
    name: str                     # MultiGPU's class name
    base: str                     # WanVideoWrapper's NODE_CLASS_MAPPINGS name
    device_input: str             # the input that names the device
    link: bool                    # True: a MULTIGPUDEVICE input; False: a device combo
    section: str = "required"     # where MultiGPU put it
    after: Optional[str] = None   # placed after this input (None: at the end; "" : first)
    default_cpu: bool = False     # combo default cpu (else the first accelerator)
    returns_device: str = ""      # name of the MULTIGPUDEVICE output it adds
    answers: Optional[str] = None  # the base input answered from the device: load_device | device
    unwrap: Tuple[str, ...] = ()  # inputs MultiGPU's loaders hand over as a 1-tuple
    offload: bool = False         # also set the module's offload_device for the call
    swap_device: bool = False     # block swap: the choice goes into the returned args


# From MultiGPU 2.6.3 wanvideo.py, node by node (what it adds, where, and what
# it answers for WanVideoWrapper).
WAN_NODES: List[WanNode] = [
    WanNode("WanVideoModelLoaderMultiGPU", "WanVideoModelLoader", "compute_device", False,
            returns_device="compute_device"),
    WanNode("WanVideoSamplerMultiGPU", "WanVideoSampler", "compute_device", True, after="model",
            offload=True),
    WanNode("LoadWanVideoT5TextEncoderMultiGPU", "LoadWanVideoT5TextEncoder", "device", False,
            section="optional", after="", returns_device="load_device", answers="load_device"),
    WanNode("LoadWanVideoClipTextEncoderMultiGPU", "LoadWanVideoClipTextEncoder", "device", False,
            section="optional", after="", returns_device="load_device", answers="load_device"),
    WanNode("WanVideoTextEncodeMultiGPU", "WanVideoTextEncode", "load_device", True,
            section="optional", after="t5", answers="device", unwrap=("t5",)),
    WanNode("WanVideoTextEncodeCachedMultiGPU", "WanVideoTextEncodeCached", "load_device", False,
            answers="device"),
    WanNode("WanVideoTextEncodeSingleMultiGPU", "WanVideoTextEncodeSingle", "load_device", True,
            section="optional", after="t5", answers="device", unwrap=("t5",)),
    WanNode("WanVideoVAELoaderMultiGPU", "WanVideoVAELoader", "load_device", False,
            section="optional", after="", returns_device="load_device"),
    WanNode("WanVideoTinyVAELoaderMultiGPU", "WanVideoTinyVAELoader", "load_device", False,
            section="optional", after="", returns_device="load_device"),
    WanNode("WanVideoBlockSwapMultiGPU", "WanVideoBlockSwap", "swap_device", False,
            section="optional", default_cpu=True, swap_device=True),
    WanNode("WanVideoImageToVideoEncodeMultiGPU", "WanVideoImageToVideoEncode", "load_device", True,
            section="optional", after="vae", unwrap=("vae",), offload=True),
    WanNode("WanVideoDecodeMultiGPU", "WanVideoDecode", "load_device", True, after="vae",
            unwrap=("vae",)),
    WanNode("WanVideoVACEEncodeMultiGPU", "WanVideoVACEEncode", "load_device", True, after="vae",
            unwrap=("vae",)),
    WanNode("WanVideoEncodeMultiGPU", "WanVideoEncode", "load_device", True, after="vae",
            unwrap=("vae",)),
    WanNode("WanVideoClipVisionEncodeMultiGPU", "WanVideoClipVisionEncode", "load_device", True,
            after="clip_vision", unwrap=("clip_vision",)),
    WanNode("WanVideoControlnetLoaderMultiGPU", "WanVideoControlnetLoader", "device", False),
    WanNode("FantasyTalkingModelLoaderMultiGPU", "FantasyTalkingModelLoader", "device", False),
    WanNode("Wav2VecModelLoaderMultiGPU", "Wav2VecModelLoader", "device", False),
    WanNode("WanVideoUni3C_ControlnetLoaderMultiGPU", "WanVideoUni3C_ControlnetLoader", "device", False,
            after="load_device"),
    WanNode("DownloadAndLoadWav2VecModelMultiGPU", "DownloadAndLoadWav2VecModel", "device", False),
]


def _insert(section: Dict[str, tuple], name: str, spec: tuple, after: Optional[str]) -> Dict[str, tuple]:
    """section with name: spec placed after `after` ("" first, None or
    missing: last), keeping the other inputs' order."""
    items = [(k, v) for k, v in section.items() if k != name]
    if after == "":
        at = 0
    else:
        keys = [k for k, _ in items]
        at = keys.index(after) + 1 if after in keys else len(items)
    items.insert(at, (name, spec))
    return dict(items)


def input_types(base_cls: type, entry: WanNode, names: List[str]) -> dict:
    """WanVideoWrapper's INPUT_TYPES with MultiGPU's device input in its place
    and the input it answers taken away."""
    inputs = copy.deepcopy(base_cls.INPUT_TYPES())
    if entry.answers:
        for section in ("required", "optional"):
            inputs.get(section, {}).pop(entry.answers, None)
    if entry.link:
        spec: tuple = (DEVICE_TYPE,)
    else:
        choices, accelerator = families.device_choices(names)
        spec = (choices, {"default": "cpu" if entry.default_cpu else accelerator})
    section = inputs.get(entry.section, {})
    inputs[entry.section] = _insert(section, entry.device_input, spec, entry.after)
    return inputs


def _unwrapped(value):
    """MultiGPU's WanVideo loaders output the pack's result tuple; ours the model."""
    return value[0] if isinstance(value, tuple) and len(value) == 1 else value


@contextlib.contextmanager
def _module_devices(module, device, offload) -> Iterator[None]:
    """WanVideoWrapper's module globals `device` (and `offload_device`) answer
    the chosen devices during the call."""
    saved = {}
    for name, value in (("device", device), ("offload_device", offload)):
        if value is not None and module is not None and hasattr(module, name):
            saved[name] = getattr(module, name)
            setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


_told = False


def _tell_once() -> None:
    global _told
    if not _told:
        _told = True
        logger.info("distorch: ComfyUI-WanVideoWrapper's MultiGPU names choose the device only; "
                    "WanVideoWrapper reads its model files itself, so these weights are its own, "
                    "not distorchd's (not shared, not capacity-checked)")


def _offload_for(entry: WanNode, kwargs: dict, chosen) -> Optional[object]:
    if not entry.offload:
        return None
    if entry.base == "WanVideoSampler":
        # MultiGPU's block swap node names the device swapped blocks go to
        model = kwargs.get("model")
        options = getattr(model, "model_options", None) or {}
        swap = (options.get("transformer_options") or {}).get("block_swap_args") or {}
        return devices.torch_device_for(str(swap["swap_device"])) if "swap_device" in swap else None
    import comfy.model_management as mm
    return mm.unet_offload_device()


def make_node(base_cls: type, entry: WanNode) -> type:
    returns = tuple(base_cls.RETURN_TYPES) + ((DEVICE_TYPE,) if entry.returns_device else ())
    base_names = tuple(getattr(base_cls, "RETURN_NAMES", None) or base_cls.RETURN_TYPES)
    names_out = base_names + ((entry.returns_device,) if entry.returns_device else ())

    class Node:
        @classmethod
        def INPUT_TYPES(cls):
            return input_types(base_cls, entry, nodes.device_names(False))

        RETURN_TYPES = returns
        RETURN_NAMES = names_out
        FUNCTION = "distorch_wanvideo"
        CATEGORY = CATEGORY
        DESCRIPTION = (f"WanVideoWrapper's {entry.base} on a chosen device (MultiGPU's name; "
                       f"WanVideoWrapper's own weights)")

        def distorch_wanvideo(self, **kwargs):
            _tell_once()
            _, accelerator = families.device_choices(nodes.device_names(False))
            chosen = kwargs.pop(entry.device_input, None) or ("cpu" if entry.default_cpu else accelerator)
            chosen = str(chosen)
            if entry.swap_device:
                out = getattr(base_cls(), base_cls.FUNCTION)(**kwargs)
                return ({**out[0], "swap_device": chosen},) + tuple(out[1:])
            for name in entry.unwrap:
                if name in kwargs:
                    kwargs[name] = _unwrapped(kwargs[name])
            cpu = chosen == "cpu"
            if entry.answers == "load_device":
                kwargs["load_device"] = "offload_device" if cpu else "main_device"
            elif entry.answers == "device":
                kwargs["device"] = "cpu" if cpu else "gpu"
            target = devices.torch_device_for(chosen)
            offload = _offload_for(entry, kwargs, target)
            module = sys.modules.get(base_cls.__module__)
            with devices.override_devices(model=target), _module_devices(module, target, offload):
                out = getattr(base_cls(), base_cls.FUNCTION)(**kwargs)
            if entry.returns_device:
                out = tuple(out) + (chosen,)
            return out

    if hasattr(base_cls, "VALIDATE_INPUTS"):
        Node.VALIDATE_INPUTS = base_cls.VALIDATE_INPUTS
    Node.__name__ = Node.__qualname__ = entry.name
    return Node


def build(stock_mappings: Dict[str, type]) -> Dict[str, type]:
    """{MultiGPU name: class} for the WanVideoWrapper nodes that are loaded."""
    classes: Dict[str, type] = {}
    for entry in WAN_NODES:
        base_cls = stock_mappings.get(entry.base)
        if base_cls is not None and hasattr(base_cls, "INPUT_TYPES"):
            classes[entry.name] = make_node(base_cls, entry)
    return classes
