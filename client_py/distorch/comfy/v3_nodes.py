"""distorch twins of ComfyUI's V3 loader nodes (comfy_api `io.ComfyNode`).

ComfyUI (0.33.0: TripleCLIPLoader, QuadrupleCLIPLoader) defines some loaders as
V3 nodes: a schema from `define_schema()` and a classmethod `execute()`.
ComfyUI handles any `io.ComfyNode` subclass the V3 way, ignoring what the V1
path of nodes.py sets (INPUT_TYPES, FUNCTION, IS_CHANGED):

  - /object_info is built from `define_schema()` alone (node id, display name,
    inputs), so the twin's schema must carry our inputs and our node id;
  - prompt validation and execution read the inputs through the schema too,
    and pass only the inputs it declares;
  - `execute()` runs on a locked per-run clone of the class whose `hidden`
    holds the hidden values (unique_id), never in the keyword arguments;
  - IS_CHANGED is `fingerprint_inputs()`, used only when the class overrides it.

So a twin here subclasses the stock class (its helpers stay reachable through
cls), returns the stock schema with our node id, display name, category and
inputs, and runs the stock `execute()` inside nodes.run_broker (broker node) or
under the chosen device (device node). Its result is the stock io.NodeOutput.
"""

from __future__ import annotations

import logging
from typing import Dict, Optional

from . import devices
from .registry import REGISTRY

logger = logging.getLogger(__name__)


def is_v3(stock_cls: type) -> bool:
    """True when ComfyUI treats stock_cls as a V3 node (execution.py and
    server.py test exactly this base class)."""
    try:
        from comfy_api.internal import _ComfyNodeInternal
    except ImportError:  # a ComfyUI before the V3 API
        return False
    return isinstance(stock_cls, type) and issubclass(stock_cls, _ComfyNodeInternal)


def _io():
    from comfy_api.latest import io
    return io


def _schema_caches(io) -> Dict[str, None]:
    """Class attributes to reset on a twin. ComfyUI's GET_SCHEMA caches schema
    fields in `_CATEGORY`, `_DESCRIPTION`, `_RETURN_TYPES`, ... (filling only
    the ones still None) and the schema in SCHEMA. ComfyUI calls it on the stock
    class when it registers it, so a subclass would inherit the stock's category
    and the like unless they are None again on the subclass."""
    caches: Dict[str, None] = {"SCHEMA": None}
    for klass in io.ComfyNode.__mro__:
        for name, value in vars(klass).items():
            if value is None and name.startswith("_") and not name.startswith("__") and name.isupper():
                caches[name] = None
    return caches


def _twin_schema(stock_cls, node_id: str, display_name: str, category: str):
    """The stock schema (a fresh one: define_schema builds it per call) under
    our id, without the stock `device` input (our inputs choose the device)."""
    schema = stock_cls.define_schema()
    schema.node_id = node_id
    schema.display_name = display_name
    schema.category = category
    schema.inputs = [i for i in schema.inputs if i.id != "device"]
    return schema


def stock_display_name(stock_cls, title: str) -> str:
    """The name ComfyUI shows for the stock node (its schema's), else title."""
    return stock_cls.define_schema().display_name or title


def _as_node_output(io, out):
    """run_broker returns the stock NodeOutput, or a tuple when it reuses a model."""
    return out if isinstance(out, io.NodeOutput) else io.NodeOutput(*out)


def make_broker_node(stock_cls, kind: str, title: str) -> type:
    """Distorch<Loader> for a V3 stock loader: the stock inputs plus
    compute_device, virtual_vram_gb, donor_device, expert_mode_allocations,
    keep_loaded and own_placement (the V1 twins' defaults), loading through the
    broker."""
    from . import nodes  # nodes dispatches here; import late to avoid a cycle
    io = _io()
    node_id = "Distorch" + stock_cls.__name__
    display_name = f"{stock_display_name(stock_cls, title)} (distorch)"

    class Node(stock_cls):
        @classmethod
        def define_schema(cls):
            schema = _twin_schema(stock_cls, node_id, display_name, "distorch")
            names = nodes.device_names(True)
            compute = devices.default_compute(names)
            schema.inputs += [
                io.Combo.Input("compute_device", options=names, default=compute, optional=True),
                io.Float.Input("virtual_vram_gb", default=0.0, min=0.0, max=1024.0, step=0.1,
                               optional=True),
                io.Combo.Input("donor_device", options=names,
                               default=devices.default_donor(names, compute), optional=True),
                io.String.Input("expert_mode_allocations", multiline=False, default="",
                                optional=True),
                io.Boolean.Input("keep_loaded", default=False, optional=True),
                io.Boolean.Input("own_placement", default=False, optional=True),
            ]
            schema.hidden = list(schema.hidden or [])
            if io.Hidden.unique_id not in schema.hidden:
                schema.hidden.append(io.Hidden.unique_id)
            return schema

        @classmethod
        def fingerprint_inputs(cls, **kwargs):
            # cls is ComfyUI's per-run clone ("...Clone"): key by our node id
            return REGISTRY.change_token(node_id, kwargs)

        @classmethod
        def execute(cls, **kwargs):
            def stock(inputs: dict):
                return super(Node, cls).execute(**inputs)
            unique_id: Optional[str] = getattr(cls.hidden, "unique_id", None)
            out = nodes.run_broker(stock, node_id, kind, {**kwargs, "unique_id": unique_id})
            return _as_node_output(io, out)

    for name, value in _schema_caches(io).items():
        setattr(Node, name, value)
    Node.TITLE = display_name  # for NODE_DISPLAY_NAME_MAPPINGS; ComfyUI reads the schema's
    Node.__name__ = Node.__qualname__ = node_id
    return Node


def make_device_node(stock_cls, kind: str, title: str) -> type:
    """Distorch<Loader>Device for a V3 stock loader: a `device` input, stock loading there."""
    from . import nodes
    io = _io()
    node_id = "Distorch" + stock_cls.__name__ + "Device"
    display_name = f"{stock_display_name(stock_cls, title)} (device)"

    class Node(stock_cls):
        @classmethod
        def define_schema(cls):
            schema = _twin_schema(stock_cls, node_id, display_name, "distorch/device")
            names = nodes.device_names(False)
            schema.inputs.append(io.Combo.Input("device", options=names,
                                                default=devices.default_compute(names), optional=True))
            return schema

        @classmethod
        def execute(cls, device: Optional[str] = None, **kwargs):
            target = devices.torch_device_for(device or devices.default_compute(nodes.device_names(False)))
            with devices.override_devices(**nodes.slots_for(kind, target)):
                return super(Node, cls).execute(**kwargs)

    for name, value in _schema_caches(io).items():
        setattr(Node, name, value)
    Node.TITLE = display_name
    Node.__name__ = Node.__qualname__ = node_id
    return Node
