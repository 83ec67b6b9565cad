"""`comfy_api.latest`: the V3 node API (`io`, ComfyExtension), as ComfyUI
0.33.0 comfy_api/latest/__init__.py exports it (io is also exported as IO)."""

from abc import ABC, abstractmethod
from typing import List

from . import _io as io

IO = io


class ComfyExtension(ABC):
    """0.33.0 ComfyExtension: what a V3 module's `comfy_entrypoint()` returns;
    nodes.load_custom_node awaits on_load() and get_node_list()."""

    async def on_load(self) -> None:
        pass

    @abstractmethod
    async def get_node_list(self) -> List[type]:
        ...


__all__ = ["io", "IO", "ComfyExtension"]
