"""MultiGPU-named loader nodes over ComfyUI's (and ComfyUI-GGUF's) loaders.

A V1 stock loader gets a V1 subclass: the stock INPUT_TYPES plus the family's
inputs (families.py), the stock loader function run inside nodes.run_broker.
A V3 stock loader (ComfyUI 0.33: TripleCLIPLoader, QuadrupleCLIPLoader) gets
a V3 twin, because ComfyUI reads a V3 class's inputs from define_schema()
alone (see distorch/comfy/v3_nodes.py): the stock schema under the MultiGPU
name and category, with the family's inputs.

Display names: ComfyUI-MultiGPU registers no NODE_DISPLAY_NAME_MAPPINGS, so
ComfyUI shows its class names; the same names show here.
"""

from __future__ import annotations

from typing import Optional

from .. import nodes, v3_nodes
from . import families, request
from .table import MultiGPULoader


def make_v1_node(stock_cls: type, entry: MultiGPULoader) -> type:
    family = families.FAMILIES[entry.family]
    node_type = entry.name

    class Node(stock_cls):
        @classmethod
        def INPUT_TYPES(cls):
            inputs = families.add_v1_inputs(stock_cls.INPUT_TYPES(), family, nodes.device_names(True))
            inputs.setdefault("hidden", {})["unique_id"] = "UNIQUE_ID"
            return inputs

        FUNCTION = "distorch_multigpu_load"
        CATEGORY = family.category

        @classmethod
        def IS_CHANGED(cls, **kwargs):
            return request.change_token(node_type, entry.family, kwargs)

        def distorch_multigpu_load(self, **kwargs):
            def stock(inputs: dict):
                return getattr(stock_cls, stock_cls.FUNCTION)(self, **inputs)
            return request.run(stock, node_type, entry.family, entry.kind, kwargs)

    Node.__name__ = Node.__qualname__ = node_type
    return Node


def _with_family_inputs(stock_inputs: list, added: list) -> list:
    """Stock inputs with each added one replacing a stock input of its id
    where it stands, else appended (MultiGPU's dict assignment, in V3)."""
    out = list(stock_inputs)
    for item in added:
        at = next((i for i, s in enumerate(out) if s.id == item.id), None)
        if at is None:
            out.append(item)
        else:
            out[at] = item
    return out


def make_v3_node(stock_cls: type, entry: MultiGPULoader) -> type:
    io = v3_nodes._io()
    family = families.FAMILIES[entry.family]
    node_id = entry.name

    class Node(stock_cls):
        @classmethod
        def define_schema(cls):
            schema = stock_cls.define_schema()
            schema.node_id = node_id
            schema.display_name = node_id
            schema.category = family.category
            schema.inputs = _with_family_inputs(
                schema.inputs, families.v3_inputs(io, family, nodes.device_names(True)))
            schema.hidden = list(schema.hidden or [])
            if io.Hidden.unique_id not in schema.hidden:
                schema.hidden.append(io.Hidden.unique_id)
            return schema

        @classmethod
        def fingerprint_inputs(cls, **kwargs):
            return request.change_token(node_id, entry.family, kwargs)

        @classmethod
        def execute(cls, **kwargs):
            def stock(inputs: dict):
                return super(Node, cls).execute(**inputs)
            unique_id: Optional[str] = getattr(cls.hidden, "unique_id", None)
            out = request.run(stock, node_id, entry.family, entry.kind, {**kwargs, "unique_id": unique_id})
            return v3_nodes._as_node_output(io, out)

    for name, value in v3_nodes._schema_caches(io).items():
        setattr(Node, name, value)
    Node.__name__ = Node.__qualname__ = node_id
    return Node


def make_node(stock_cls: type, entry: MultiGPULoader) -> type:
    if v3_nodes.is_v3(stock_cls):
        return make_v3_node(stock_cls, entry)
    return make_v1_node(stock_cls, entry)
