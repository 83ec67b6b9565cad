"""distorch: the Python side of distorchd, the machine-wide weight broker.

    from distorch import Client, DistorchError, DaemonUnavailable

Importing this package needs grpcio and protobuf only: torch is imported when
a model is loaded (tensor adoption), ComfyUI only by the ComfyUI integration.
Inside ComfyUI (when `comfy` is importable) the package is also a custom node:
NODE_CLASS_MAPPINGS / NODE_DISPLAY_NAME_MAPPINGS come from distorch.comfy.nodes,
imported on first access.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import Any, Dict

from .errors import AdoptionError, DaemonUnavailable, DistorchError
from .types import (DeviceBytes, DeviceInfo, FreeResult, LeaseInfo, ModelInfo, ModelRef,
                    SessionInfo, StatusInfo)

__version__ = "0.1.0"

logger = logging.getLogger(__name__)

_CLIENT_NAMES = ("Client", "LoadedModel", "default_socket_path")
_NODE_NAMES = ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS")
_nodes: Dict[str, Any] = {}

__all__ = ["Client", "LoadedModel", "DistorchError", "DaemonUnavailable", "AdoptionError",
           "FreeResult", "ModelRef", "DeviceBytes", "DeviceInfo", "LeaseInfo", "ModelInfo",
           "SessionInfo", "StatusInfo", "default_socket_path"]


def _comfy_present() -> bool:
    try:
        return importlib.util.find_spec("comfy") is not None
    except (ImportError, ValueError):
        return False


def _node_mappings() -> Dict[str, Any]:
    """distorch.comfy.nodes' mappings, or empty ones (after one warning) when
    the ComfyUI integration cannot be imported."""
    if not _nodes:
        try:
            nodes = importlib.import_module(".comfy.nodes", __name__)
            _nodes.update({n: getattr(nodes, n) for n in _NODE_NAMES})
        except ImportError as e:
            logger.warning("distorch: the ComfyUI nodes are not available (%s); distorch "
                           "loader nodes will be missing", e)
            _nodes.update({n: {} for n in _NODE_NAMES})
    return _nodes


def __getattr__(name: str) -> Any:
    # Lazy: the client pulls in grpc, the nodes pull in ComfyUI and torch.
    if name in _CLIENT_NAMES:
        client = importlib.import_module(".client", __name__)
        return getattr(client, name)
    if name in _NODE_NAMES and _comfy_present():
        return _node_mappings()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
