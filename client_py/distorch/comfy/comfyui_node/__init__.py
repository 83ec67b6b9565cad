"""ComfyUI custom-node entry for distorch.

Install with `scripts/install-comfyui-node.sh <ComfyUI>` (docs/comfyui.md): it
links this directory into <ComfyUI>/custom_nodes/distorch, makes sure the gRPC
stubs exist, and checks ComfyUI's Python. ComfyUI imports this file under a
path-like module name, so it puts client_py on sys.path and imports the real
package by its own name. requirements.txt here is what ComfyUI-Manager installs.
"""

import importlib
import os
import sys

_here = os.path.dirname(os.path.realpath(__file__))
_client_py = os.path.dirname(os.path.dirname(os.path.dirname(_here)))
try:
    import distorch.comfy  # noqa: F401  (installed with pip, or already on the path)
except ImportError:
    if _client_py not in sys.path:
        sys.path.insert(0, _client_py)


def _check_imports() -> None:
    """Fails the node's import with what to install, instead of a bare
    ModuleNotFoundError deep inside distorch."""
    missing = []
    for module, what in (("grpc", "grpcio"), ("google.protobuf", "protobuf")):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(what)
    if missing:
        raise ImportError(
            f"distorch: ComfyUI's Python ({sys.executable}) lacks {', '.join(missing)}; install "
            f"them with `{sys.executable} -m pip install -r "
            f"{os.path.join(_here, 'requirements.txt')}` and restart ComfyUI")
    try:
        importlib.import_module("distorch.v1.broker_pb2_grpc")
    except ImportError as e:
        raise ImportError(
            f"distorch: the gRPC stubs (distorch/v1/broker_pb2*.py) cannot be imported ({e}); "
            f"generate them with `scripts/install-comfyui-node.sh <ComfyUI>` or `cmake --build "
            f"build --target distorch_python_stubs`, then restart ComfyUI") from None


_check_imports()

from distorch.comfy import setup as _setup  # noqa: E402

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = _setup()
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
