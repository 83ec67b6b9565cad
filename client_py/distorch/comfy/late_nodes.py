"""Node names for custom-node packs that ComfyUI imports after distorch.

ComfyUI 0.33 imports `custom_nodes/` in `os.listdir` order (nodes.py
`init_external_custom_nodes`: not sorted; on ext4 it is hash order), and
`load_custom_node` merges each pack's NODE_CLASS_MAPPINGS into
`nodes.NODE_CLASS_MAPPINGS` right after importing it. Our twins of a pack's
nodes (Distorch*GGUF, MultiGPU's GGUF and third-party names) need the pack's
classes, so a pack imported after distorch would get none.

`/object_info` (server.py `node_info`), prompt validation and execution
(execution.py) read `nodes.NODE_CLASS_MAPPINGS` and
`NODE_DISPLAY_NAME_MAPPINGS` when they run, after every custom node has been
imported. So `patch_load_custom_node` wraps `nodes.load_custom_node` (which
`init_external_custom_nodes` looks up by its global name for every pack):
after each later pack has loaded, `on_loaded` gets the classes it added and
returns the twins to add; they go into both global mappings, marked with our
own RELATIVE_PYTHON_MODULE, and the undo takes out exactly the names it
added (still ours) and puts `load_custom_node` back.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from types import ModuleType
from typing import Callable, Dict, List, Optional, Tuple

from . import patches

logger = logging.getLogger(__name__)

# on_loaded(pack name, {name: class} the pack added) -> ({name: class}, {name: display name})
OnLoaded = Callable[[str, Dict[str, type]], Tuple[Dict[str, type], Dict[str, str]]]


def _pack_name(module_path: object) -> str:
    base = os.path.basename(str(module_path).rstrip("/"))
    return os.path.splitext(base)[0] if base.endswith(".py") else base


def _added(before: Dict[str, type], after: Dict[str, type]) -> Dict[str, type]:
    return {name: cls for name, cls in after.items() if before.get(name) is not cls}


class LateNodes:
    """What this process added to ComfyUI's global mappings after distorch's
    own import. Used from ComfyUI's loading thread only."""

    def __init__(self, nodes_mod: ModuleType, on_loaded: OnLoaded, python_module: Callable[[], str]):
        self.nodes_mod = nodes_mod
        self.on_loaded = on_loaded
        self.python_module = python_module
        self.added: Dict[str, type] = {}
        self.titles: Dict[str, str] = {}

    def after_load(self, module_path: object, before: Dict[str, type]) -> None:
        mappings = self.nodes_mod.NODE_CLASS_MAPPINGS
        new = _added(before, mappings)
        if not new:
            return
        pack = _pack_name(module_path)
        classes, titles = self.on_loaded(pack, new)
        placed: List[str] = []
        for name, cls in classes.items():
            owner = mappings.get(name)
            if owner is not None and owner is not cls:
                logger.warning("distorch: %s is already registered by %s; distorch does not replace it",
                               name, getattr(owner, "RELATIVE_PYTHON_MODULE", owner.__module__))
                continue
            cls.RELATIVE_PYTHON_MODULE = self.python_module()
            mappings[name] = cls
            self.added[name] = cls
            if name in titles:
                self.nodes_mod.NODE_DISPLAY_NAME_MAPPINGS[name] = titles[name]
                self.titles[name] = titles[name]
            placed.append(name)
        if placed:
            logger.info("distorch: %s loaded after distorch; %d more node names registered: %s",
                        pack, len(placed), ", ".join(placed))

    def remove(self) -> None:
        mappings = self.nodes_mod.NODE_CLASS_MAPPINGS
        shown = self.nodes_mod.NODE_DISPLAY_NAME_MAPPINGS
        for name, cls in self.added.items():
            if mappings.get(name) is cls:
                del mappings[name]
                if shown.get(name) == self.titles.get(name, object()):
                    del shown[name]
        self.added.clear()
        self.titles.clear()


def patch_load_custom_node(nodes_mod: ModuleType, late: LateNodes) -> Optional[patches.Undo]:
    """`nodes.load_custom_node` runs as before, then hands what the pack
    registered to `late`. A failure in distorch's part is logged and never
    fails the pack's load."""
    original = getattr(nodes_mod, "load_custom_node", None)
    problem = patches.signature_problem(original, required=("module_path",))
    if problem:
        patches.report_left_out("nodes.load_custom_node", problem,
                                "Packs loaded after distorch (ComfyUI-GGUF, WanVideoWrapper, ...) get "
                                "no distorch or MultiGPU names; they need to load before distorch.")
        return None

    def observe(module_path, before) -> None:
        try:
            late.after_load(module_path, before)
        except Exception:  # never break ComfyUI's start-up for our names
            logger.exception("distorch: registering node names for %s failed", module_path)

    if inspect.iscoroutinefunction(original):  # ComfyUI 0.33 (async since 0.3.4x)
        @functools.wraps(original)
        async def load_custom_node(module_path, *args, **kwargs):
            before = dict(nodes_mod.NODE_CLASS_MAPPINGS)
            result = await original(module_path, *args, **kwargs)
            observe(module_path, before)
            return result
    else:
        @functools.wraps(original)
        def load_custom_node(module_path, *args, **kwargs):
            before = dict(nodes_mod.NODE_CLASS_MAPPINGS)
            result = original(module_path, *args, **kwargs)
            observe(module_path, before)
            return result

    restore = patches._replace(nodes_mod, "load_custom_node", load_custom_node)

    def undo() -> None:
        restore()
        late.remove()
    return undo
