"""ComfyUI custom-node entry for distorch.

Link this directory into ComfyUI:  ln -s <repo>/client_py/distorch/comfy/comfyui_node
<ComfyUI>/custom_nodes/distorch  (docs/comfyui.md). ComfyUI imports it under a
path-like module name, so it puts client_py on sys.path and imports the real
package by its own name.
"""

import os
import sys

_client_py = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.realpath(__file__)))))
try:
    import distorch.comfy  # noqa: F401  (installed with pip, or already on the path)
except ImportError:
    if _client_py not in sys.path:
        sys.path.insert(0, _client_py)

from distorch.comfy import setup as _setup  # noqa: E402

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = _setup()
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
