"""One MultiGPU node execution, up to the broker call: its inputs are split
into the stock loader's and the MultiGPU family's, the family's become a
BrokerRequest (translate.py), and the result is the keyword set that
nodes.run_broker takes (the node's stock inputs plus distorch's broker
inputs). The same keyword set keys the change token, so a MultiGPU node
re-runs exactly when a distorch node with those inputs would.
"""

from __future__ import annotations

import logging
from typing import Optional, Tuple

from .. import nodes
from ..registry import REGISTRY
from . import families, translate

logger = logging.getLogger(__name__)


def broker_kwargs(family_name: str, kwargs: dict) -> Tuple[dict, translate.BrokerRequest]:
    """(run_broker's kwargs, the request) for a node's kwargs (not changed)."""
    family = families.FAMILIES[family_name]
    names = nodes.device_names(True)
    rest = dict(kwargs)
    values = families.defaults(family, names)
    for name in family.input_names():
        if name in rest:
            values[name] = rest.pop(name)
    request = translate.for_family(family_name, values, names)
    out = dict(rest)
    out.update(compute_device=request.compute, virtual_vram_gb=0.0,
               expert_mode_allocations=request.allocation, keep_loaded=request.keep_loaded)
    return out, request


def change_token(node_type: str, family_name: str, kwargs: dict) -> str:
    return REGISTRY.change_token(node_type, broker_kwargs(family_name, kwargs)[0])


def log_request(node_type: str, node_id: Optional[str], request: translate.BrokerRequest) -> None:
    """The line that says what a MultiGPU node asked for (run_broker's own line
    then says where the weights went)."""
    allocation = repr(request.allocation) if request.allocation else f"the whole model on {request.compute}"
    multigpu = (f"; MultiGPU's allocation string would be {request.multigpu_string!r}"
                if request.multigpu_string else "")
    note = f"; {request.note}" if request.note else ""
    logger.info("distorch: %s%s: compute %s, allocation %s, keep_loaded %s%s%s", node_type,
                f" (node {node_id})" if node_id is not None else "", request.compute, allocation,
                request.keep_loaded, multigpu, note)


def run(stock, node_type: str, family_name: str, kind: str, kwargs: dict):
    """Runs one MultiGPU loader node through the broker; stock(inputs) runs
    the wrapped loader with its own inputs."""
    bkw, request = broker_kwargs(family_name, kwargs)
    log_request(node_type, bkw.get("unique_id"), request)
    return nodes.run_broker(stock, node_type, kind, bkw)
