"""Who serves the MultiGPU node names when ComfyUI-MultiGPU is installed too.

ComfyUI 0.33 imports custom nodes in `os.listdir` order (not sorted: on ext4
it is hash order) and a later NODE_CLASS_MAPPINGS entry replaces an earlier
one (nodes.py load_custom_node), so "whoever loads last" would be an accident
of the file system. distorch decides instead: while ComfyUI-MultiGPU is
installed (loaded already, or an enabled directory in custom_nodes that
ComfyUI will load), its names are its own and distorch registers none of them;
its Distorch* nodes are unaffected. Removing ComfyUI-MultiGPU (or renaming its
directory to `*.disabled`) and restarting hands the names to distorch.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Dict, Iterable, Optional

logger = logging.getLogger(__name__)

MARKER_NODE = "DeviceSelectorMultiGPU"  # registered by every MultiGPU release


def _normalized(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def _custom_node_dirs() -> Iterable[str]:
    try:
        import folder_paths
        return list(folder_paths.get_folder_paths("custom_nodes"))
    except Exception:  # an old or partial ComfyUI: nothing to scan
        return []


def installed_multigpu(stock_mappings: Dict[str, type]) -> Optional[str]:
    """Where ComfyUI-MultiGPU is, or None: the module that registered its
    marker node, or an enabled custom_nodes directory of that name."""
    marker = stock_mappings.get(MARKER_NODE)
    if marker is not None and not marker.__module__.startswith("distorch"):
        module = sys.modules.get(marker.__module__)
        return getattr(module, "__file__", None) or marker.__module__
    for root in _custom_node_dirs():
        try:
            entries = os.listdir(root)
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(root, entry)
            if entry.endswith(".disabled") or not os.path.isdir(path):
                continue
            if _normalized(entry) == "comfyuimultigpu":
                return path
    return None


_logged = False


def log_owner(where: str) -> None:
    """One line per process: which pack serves the names."""
    global _logged
    if _logged:
        return
    _logged = True
    logger.warning("distorch: ComfyUI-MultiGPU is installed (%s), so its node names "
                   "(UNETLoaderDisTorch2MultiGPU, ...) stay ComfyUI-MultiGPU's and distorch "
                   "registers none of them; its Distorch* nodes work as usual. To load "
                   "MultiGPU workflows through distorchd, remove ComfyUI-MultiGPU (or rename "
                   "its directory to *.disabled) and restart ComfyUI.", where)
