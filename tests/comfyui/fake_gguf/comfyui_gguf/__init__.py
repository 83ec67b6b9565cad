"""A ComfyUI-GGUF-shaped custom node for distorch's tests (see ../README.md)."""
from .nodes import NODE_CLASS_MAPPINGS

NODE_DISPLAY_NAME_MAPPINGS = {k: v.TITLE for k, v in NODE_CLASS_MAPPINGS.items()}
