"""GET /object_info as ComfyUI 0.33.0 server.py builds it (node_info), without
the web server: what the frontend learns about each node's inputs. A widget
input missing here is one the frontend never sends in a prompt."""
from typing import Any, Dict, Optional

import nodes
from comfy_api.internal import _ComfyNodeInternal


def node_info(node_class: str, mappings: Optional[Dict[str, type]] = None) -> Dict[str, Any]:
    """One node's entry. 0.33.0: a V3 class answers from its schema alone
    (GET_NODE_INFO_V1: define_schema's inputs, node_id as name, the schema's
    display_name); a V1 class from INPUT_TYPES, RETURN_TYPES and the display-name mapping."""
    cls = (mappings if mappings is not None else nodes.NODE_CLASS_MAPPINGS)[node_class]
    if issubclass(cls, _ComfyNodeInternal):
        return cls.GET_NODE_INFO_V1()
    inputs = cls.INPUT_TYPES()
    return {"input": inputs, "input_order": {k: list(v) for k, v in inputs.items()},
            "is_input_list": getattr(cls, "INPUT_IS_LIST", False),
            "output": cls.RETURN_TYPES,
            "output_is_list": getattr(cls, "OUTPUT_IS_LIST", [False] * len(cls.RETURN_TYPES)),
            "output_name": getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES),
            "name": node_class,
            "display_name": nodes.NODE_DISPLAY_NAME_MAPPINGS.get(node_class, node_class),
            "description": getattr(cls, "DESCRIPTION", ""),
            "python_module": getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"),
            "category": getattr(cls, "CATEGORY", "sd"),
            "output_node": getattr(cls, "OUTPUT_NODE", False) is True}


def object_info(mappings: Optional[Dict[str, type]] = None) -> Dict[str, Dict[str, Any]]:
    mappings = mappings if mappings is not None else nodes.NODE_CLASS_MAPPINGS
    return {name: node_info(name, mappings) for name in mappings}
