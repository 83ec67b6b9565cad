"""ComfyUI's versioned node API (V3 nodes), as far as distorch's tests need it.

Shapes from ComfyUI 0.33.0 (comfy_api/); the code is written for this fake.
"""
