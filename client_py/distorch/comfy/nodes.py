"""The distorch loader nodes.

Each node subclasses one of ComfyUI's own loader nodes and runs its loader
function unchanged, so models are built by ComfyUI's own code:

  Distorch<Loader>        broker nodes: MultiGPU's inputs (compute_device,
                          virtual_vram_gb, donor_device, expert_mode_allocations)
                          plus keep_loaded; weights come zero-copy from distorchd
  Distorch<Loader>Device  device selectors: a device input, stock loading

Without a daemon that can be reached or started (session.py), a broker node
that asks for an allocation fails with an error saying how to start one; one
without an allocation loads the stock way on its compute device (session.py
warns once).

This module builds the twins of V1 stock nodes (INPUT_TYPES / FUNCTION); a
stock node that is a V3 node (comfy_api io.ComfyNode) gets V3 twins from
v3_nodes.py, which run the same run_broker.
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Callable, Dict, List, Optional, Tuple

import torch

from . import devices, dynamic_vram, loading, session, v3_nodes
from .patcher import Placement, adopt_patcher
from .registry import REGISTRY, inputs_hash, roots_of

logger = logging.getLogger(__name__)

BROKER_INPUTS = ("compute_device", "virtual_vram_gb", "donor_device",
                 "expert_mode_allocations", "keep_loaded", "own_placement")

# (stock node, kind, title). kind picks the device question ComfyUI asks:
# model -> get_torch_device, clip -> text_encoder_device, checkpoint -> both.
STOCK_LOADERS: List[Tuple[str, str, str]] = [
    ("UNETLoader", "model", "Load Diffusion Model"),
    ("CLIPLoader", "clip", "Load CLIP"),
    ("DualCLIPLoader", "clip", "DualCLIPLoader"),
    ("TripleCLIPLoader", "clip", "TripleCLIPLoader"),
    ("QuadrupleCLIPLoader", "clip", "QuadrupleCLIPLoader"),
    ("VAELoader", "model", "Load VAE"),
    ("CheckpointLoaderSimple", "checkpoint", "Load Checkpoint"),
    ("ControlNetLoader", "model", "Load ControlNet Model"),
]
GGUF_LOADERS: List[Tuple[str, str, str]] = [
    ("UnetLoaderGGUF", "model", "Unet Loader (GGUF)"),
    ("UnetLoaderGGUFAdvanced", "model", "Unet Loader (GGUF/Advanced)"),
    ("CLIPLoaderGGUF", "clip", "CLIPLoader (GGUF)"),
    ("DualCLIPLoaderGGUF", "clip", "DualCLIPLoader (GGUF)"),
    ("TripleCLIPLoaderGGUF", "clip", "TripleCLIPLoader (GGUF)"),
    ("QuadrupleCLIPLoaderGGUF", "clip", "QuadrupleCLIPLoader (GGUF)"),
]


def device_names(for_broker: bool) -> List[str]:
    """Broker devices when the daemon answers (sim: only for broker nodes),
    else what torch sees here."""
    names = devices.broker_device_names(session.client(warn=False))
    if not for_broker:
        names = [n for n in names if not devices.is_sim(n)]
    return names or devices.local_device_names()


def allocation_for(compute: str, virtual_vram_gb: float, donor: str, expert: str) -> str:
    """The allocation string a node's inputs mean (MultiGPU's precedence:
    expert string first, then virtual VRAM, else everything on compute)."""
    if expert and expert.strip():
        return expert.strip()
    if virtual_vram_gb and virtual_vram_gb > 0:
        if donor == compute:
            raise ValueError(f"distorch: donor_device {donor} is the compute_device; pick another "
                             f"device to hold the {virtual_vram_gb:g} GB of virtual VRAM")
        return f"compute={compute}, virtual_vram_gb={virtual_vram_gb:g}, donors={donor}"
    return ""


def slots_for(kind: str, device: torch.device) -> Dict[str, torch.device]:
    if kind == "clip":
        return {"text_encoder": device}
    if kind == "checkpoint":
        return {"model": device, "text_encoder": device}
    return {"model": device}


def _stock_inputs(stock_cls, drop_device: bool) -> dict:
    inputs = copy.deepcopy(stock_cls.INPUT_TYPES())
    if drop_device:
        for section in ("required", "optional"):
            inputs.get(section, {}).pop("device", None)
    return inputs


def _has_device_input(stock_cls) -> bool:
    inputs = stock_cls.INPUT_TYPES()
    return any("device" in inputs.get(section, {}) for section in ("required", "optional"))


def _call_stock(stock_cls, node, kwargs):
    return getattr(stock_cls, stock_cls.FUNCTION)(node, **kwargs)


def _results(out) -> tuple:
    """A loader's output values: a V1 node's tuple, or a V3 io.NodeOutput's args."""
    if isinstance(out, tuple):
        return out
    return tuple(getattr(out, "result", None) or ())


def run_broker(stock: Callable[[dict], object], node_type: str, kind: str, kwargs: dict):
    """One broker node execution (see the module docstring). stock(inputs) runs
    the stock loader with its own inputs; node_type names the distorch node (the
    registry keys and change tokens use it). Returns what stock returns, or, when
    an already loaded model is reused, the tuple of its outputs."""
    all_inputs = dict(kwargs)
    node_id = kwargs.pop("unique_id", None)
    opts = {k: kwargs.pop(k) for k in BROKER_INPUTS if k in kwargs}
    names = device_names(True)
    compute = opts.get("compute_device") or devices.default_compute(names)
    keep = bool(opts.get("keep_loaded", False))
    own = bool(opts.get("own_placement", False))
    allocation = allocation_for(compute, float(opts.get("virtual_vram_gb", 0.0) or 0.0),
                                opts.get("donor_device") or "cpu",
                                str(opts.get("expert_mode_allocations") or ""))
    slots = slots_for(kind, devices.torch_device_for(compute))

    def stock_load():
        return stock(kwargs)

    def stock_load_on_compute():
        # no allocation asked for: the stock load on the node's device loses nothing
        if allocation:
            raise session.unavailable_error(node_type, allocation)
        with devices.override_devices(**slots):
            return stock_load()

    client = session.client()
    if client is None:
        return stock_load_on_compute()

    load_key = inputs_hash(node_type, {**kwargs, "compute": compute, "allocation": allocation,
                                       **({"own_placement": True} if own else {})})
    entry = REGISTRY.lookup(load_key)
    if entry is not None and any(getattr(m, "lost", False) for _, m in entry.loaded):
        entry = None  # loaded through a daemon that has since restarted: load again
    if entry is not None:
        logger.info("distorch: %s already loaded here; reusing it", entry.name)
        return REGISTRY.reuse(entry, keep, node_id)

    options = loading.LoadOptions(compute_device=compute, allocation=allocation, keep_loaded=keep,
                                  own_placement=own)
    with devices.override_devices(initial=torch.device("cpu"), **slots):
        pins = loading.run_skeleton(stock_load, options)
        adoption = loading.Adoption(mode="real", options=options, client=client, pins=pins)
        try:
            with loading.adopting(adoption):
                out = stock_load()
        except Exception as e:
            for _, loaded in adoption.loaded:
                try:
                    loaded.release()
                except Exception:
                    pass
            if type(e).__name__ == "DaemonUnavailable":
                session.drop(str(e))
                return stock_load_on_compute()
            if type(e).__name__.endswith("Error") and type(e).__module__.startswith("distorch"):
                raise RuntimeError(f"distorch: {e}") from e
            raise
    if not adoption.loaded:
        return out
    patchers = roots_of(_results(out))
    for p in patchers:
        adopt_patcher(p, Placement(compute=adoption.compute_for(p.model),
                                   devices=adoption.param_devices(p.model)),
                      dynamic_vram.note_demoted)
    name = ", ".join(os.path.basename(path) for path, _ in adoption.loaded)
    entry = REGISTRY.register(load_key, name, adoption.loaded, _results(out), keep, node_id,
                              inputs_hash(node_type, all_inputs))
    for p in patchers:
        p.model._distorch_placement.entry = entry
    logger.info(adoption.summary([p.model for p in patchers]))
    for line in adoption.placement_differences(allocation):
        logger.warning(line)
    return out


def make_broker_node(stock_cls, kind: str, title: str):
    drop_device = _has_device_input(stock_cls)

    class Node(stock_cls):
        @classmethod
        def INPUT_TYPES(cls):
            inputs = _stock_inputs(stock_cls, drop_device)
            names = device_names(True)
            compute = devices.default_compute(names)
            optional = inputs.setdefault("optional", {})
            optional["compute_device"] = (names, {"default": compute})
            optional["virtual_vram_gb"] = ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1024.0, "step": 0.1})
            optional["donor_device"] = (names, {"default": devices.default_donor(names, compute)})
            optional["expert_mode_allocations"] = ("STRING", {"multiline": False, "default": ""})
            optional["keep_loaded"] = ("BOOLEAN", {"default": False})
            optional["own_placement"] = ("BOOLEAN", {"default": False})
            inputs.setdefault("hidden", {})["unique_id"] = "UNIQUE_ID"
            return inputs

        FUNCTION = "distorch_load"
        CATEGORY = "distorch"
        TITLE = f"{title} (distorch)"

        @classmethod
        def IS_CHANGED(cls, **kwargs):
            return REGISTRY.change_token(node_type, kwargs)

        def distorch_load(self, **kwargs):
            return run_broker(lambda inputs: _call_stock(stock_cls, self, inputs),
                              node_type, kind, kwargs)

    node_type = "Distorch" + stock_cls.__name__
    Node.__name__ = Node.__qualname__ = node_type
    return Node


def make_device_node(stock_cls, kind: str, title: str):
    drop_device = _has_device_input(stock_cls)

    class Node(stock_cls):
        @classmethod
        def INPUT_TYPES(cls):
            inputs = _stock_inputs(stock_cls, drop_device)
            names = device_names(False)
            inputs.setdefault("optional", {})["device"] = (names, {"default": devices.default_compute(names)})
            return inputs

        FUNCTION = "distorch_device_load"
        CATEGORY = "distorch/device"
        TITLE = f"{title} (device)"

        def distorch_device_load(self, device: Optional[str] = None, **kwargs):
            target = devices.torch_device_for(device or devices.default_compute(device_names(False)))
            with devices.override_devices(**slots_for(kind, target)):
                return _call_stock(stock_cls, self, kwargs)

    Node.__name__ = Node.__qualname__ = "Distorch" + stock_cls.__name__ + "Device"
    return Node


def build_mappings(stock_mappings: Dict[str, type], include_gguf: bool = True
                   ) -> Tuple[Dict[str, type], Dict[str, str]]:
    """NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS for ComfyUI."""
    classes: Dict[str, type] = {}
    titles: Dict[str, str] = {}
    table = list(STOCK_LOADERS) + (list(GGUF_LOADERS) if include_gguf else [])
    for stock_name, kind, title in table:
        stock_cls = stock_mappings.get(stock_name)
        if stock_cls is None:
            continue
        # ComfyUI runs a V3 node (io.ComfyNode) from its schema, whatever a
        # subclass sets for V1, so its twins are V3 nodes too (v3_nodes.py)
        if v3_nodes.is_v3(stock_cls):
            make_broker, make_device = v3_nodes.make_broker_node, v3_nodes.make_device_node
        else:
            make_broker, make_device = make_broker_node, make_device_node
        broker = make_broker(stock_cls, kind, title)
        classes[broker.__name__] = broker
        titles[broker.__name__] = broker.TITLE
        if (stock_name, kind, title) in STOCK_LOADERS:
            device_node = make_device(stock_cls, kind, title)
            classes[device_node.__name__] = device_node
            titles[device_node.__name__] = device_node.TITLE
    return classes, titles


def __getattr__(name: str):
    """NODE_CLASS_MAPPINGS / NODE_DISPLAY_NAME_MAPPINGS for a ComfyUI that
    imports the distorch package itself as the custom node (distorch/__init__)."""
    if name in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"):
        from . import setup
        classes, titles = setup()
        return classes if name == "NODE_CLASS_MAPPINGS" else titles
    raise AttributeError(name)
