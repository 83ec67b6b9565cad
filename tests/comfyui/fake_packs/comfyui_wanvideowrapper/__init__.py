"""A kijai/ComfyUI-WanVideoWrapper-shaped custom node for distorch's tests
(written for these tests; never WanVideoWrapper's code). See ../README.md.

Like the real one's __init__.py (commit 1972d87d): NODE_CLASS_MAPPINGS merged
from its node modules. The real pack needs `diffusers` (not in Debian), so
this one imports it too: without it the pack fails to import, as the real one
does, and ComfyUI registers none of its nodes."""
import diffusers  # noqa: F401  (the real pack's hard dependency)

from . import nodes, nodes_model_loading, nodes_sampler, nodes_extra

NODE_CLASS_MAPPINGS = {}
for _module in (nodes, nodes_sampler, nodes_model_loading, nodes_extra):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
NODE_DISPLAY_NAME_MAPPINGS = {name: name for name in NODE_CLASS_MAPPINGS}
