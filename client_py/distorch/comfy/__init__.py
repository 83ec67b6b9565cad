"""distorch.comfy: the ComfyUI integration of distorch.

Imported by ComfyUI as a custom node (comfyui_node/ is the directory to link
into ComfyUI's custom_nodes/). `setup()` installs the patches (patches.py,
loading.py, gguf.py) once and builds the node classes; nothing here talks to
the daemon until a node runs, and nothing fails when it is not running. Packs
ComfyUI imports after distorch get their names when they load (late_nodes.py).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Dict, List, Tuple

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_undos: List = []
_installed = False
_mappings: Tuple[Dict[str, type], Dict[str, str]] = ({}, {})


def _devices_in_use() -> List[int]:
    from . import patches, registry
    extra = []
    for entry in registry.REGISTRY.entries():
        for out in entry.outputs() or ():
            device = getattr(getattr(out, "patcher", out), "load_device", None)
            if device is not None:
                extra.append(device)
    return patches.cuda_devices_in_use(extra)


def _notify_broker() -> None:
    from . import session
    c = session.current()
    if c is not None:
        c.soft_empty_cache()


def _on_connect(client) -> None:
    from . import registry
    register = getattr(client, "on_evicted", None)
    if callable(register):
        def evicted(model_id, name: str = "") -> None:
            registry.REGISTRY.on_evicted(int(model_id))
        register(evicted)


def setup(stock_mappings: Dict[str, type] = None) -> Tuple[Dict[str, type], Dict[str, str]]:
    """Installs the patches and returns (NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS). Safe to call more than once."""
    global _installed, _mappings
    with _lock:
        if _installed:
            return _mappings
        import comfy.model_management as mm
        import comfy.utils as utils
        from . import dynamic_vram, gguf, loading, nodes, patches, registry, session

        if stock_mappings is None:
            stock_mappings = sys.modules["nodes"].NODE_CLASS_MAPPINGS
        _undos.extend(patches.patch_device_choice(mm))
        _undos.extend(loading.install(mm, utils))
        for undo in (patches.patch_unload_all_models(mm, registry.REGISTRY),
                     patches.patch_soft_empty_cache(mm, _devices_in_use, _notify_broker)):
            if undo is not None:
                _undos.append(undo)
        _undos.extend(gguf.install(stock_mappings))
        _undos.append(session.on_connect(_on_connect))
        if dynamic_vram.enabled():
            logger.info("distorch: DynamicVRAM is on; distorch-loaded models will use the "
                        "classic patcher (details when the first one loads)")
        session.client()  # one warning now if the daemon is not running
        _mappings = nodes.build_mappings(stock_mappings)
        from . import multigpu  # ComfyUI-MultiGPU's node names (multigpu/__init__.py)
        multigpu_classes, multigpu_undos = multigpu.build(stock_mappings, mm)
        _undos.extend(multigpu_undos)
        _mappings = ({**_mappings[0], **multigpu_classes}, _mappings[1])
        _watch_later_packs()
        _installed = True
        logger.info("distorch: %d nodes, %d patches installed", len(_mappings[0]), len(_undos))
        return _mappings


def _our_python_module() -> str:
    """The RELATIVE_PYTHON_MODULE ComfyUI gave our classes when it loaded us."""
    for cls in _mappings[0].values():
        module = vars(cls).get("RELATIVE_PYTHON_MODULE")
        if module:
            return module
    return "custom_nodes.distorch"


def _on_pack_loaded(pack: str, added: Dict[str, type]) -> Tuple[Dict[str, type], Dict[str, str]]:
    """Our names for the nodes a pack loaded after distorch registered (see
    late_nodes.py): Distorch*GGUF twins, MultiGPU's pack names, and the
    ComfyUI-GGUF loader patch."""
    from . import gguf, multigpu, nodes
    with _lock:
        if not _installed:
            return {}, {}
        everything = sys.modules["nodes"].NODE_CLASS_MAPPINGS
        _undos.extend(gguf.install(everything))
        classes, titles = nodes.build_mappings(added)
        classes.update(multigpu.build_late(added, everything))
        classes = {name: cls for name, cls in classes.items() if name not in _mappings[0]}
        titles = {name: title for name, title in titles.items() if name in classes}
        _mappings[0].update(classes)
        _mappings[1].update(titles)
        return classes, titles


def _watch_later_packs() -> None:
    from . import late_nodes
    nodes_mod = sys.modules.get("nodes")
    if nodes_mod is None or not hasattr(nodes_mod, "NODE_CLASS_MAPPINGS"):
        return  # not inside ComfyUI (a bare import): no later packs to watch
    late = late_nodes.LateNodes(nodes_mod, _on_pack_loaded, _our_python_module)
    undo = late_nodes.patch_load_custom_node(nodes_mod, late)
    if undo is not None:
        _undos.append(undo)


def teardown() -> None:
    """Undoes every patch (tests)."""
    global _installed, _mappings
    with _lock:
        while _undos:
            _undos.pop()()
        _installed = False
        _mappings = ({}, {})
