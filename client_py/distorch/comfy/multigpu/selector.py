"""DeviceSelectorMultiGPU and UNetLoaderLP, as ComfyUI-MultiGPU 2.6.3
`nodes.py` declares them (names, inputs, outputs, categories).

- DeviceSelectorMultiGPU outputs the chosen device name (type MULTIGPUDEVICE),
  which MultiGPU's WanVideoWrapper nodes take as an input.
- UNetLoaderLP is the stock UNet loader with weight_dtype "default"; MultiGPU
  marks the model for low-precision LoRA patching on CPU-stored blocks. Here it
  loads through the broker on the default compute device (whole model), and
  LoRAs are patched as on every distorch model (this process's copies).
"""

from __future__ import annotations

from .. import nodes
from ..registry import REGISTRY
from . import families


def make_device_selector() -> type:
    class DeviceSelectorMultiGPU:
        @classmethod
        def INPUT_TYPES(cls):
            choices, _ = families.device_choices(nodes.device_names(True))
            return {"required": {"device": (choices,)}}

        RETURN_TYPES = ("MULTIGPUDEVICE",)
        RETURN_NAMES = ("device",)
        FUNCTION = "select_device"
        CATEGORY = "multigpu"

        def select_device(self, device):
            return (device,)

    return DeviceSelectorMultiGPU


def make_unet_loader_lp(stock_cls) -> type:
    node_type = "UNetLoaderLP"

    class UNetLoaderLP:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"unet_name": stock_cls.INPUT_TYPES()["required"]["unet_name"]},
                    "hidden": {"unique_id": "UNIQUE_ID"}}

        RETURN_TYPES = ("MODEL",)
        FUNCTION = "load_unet"
        CATEGORY = "loaders"

        @classmethod
        def IS_CHANGED(cls, **kwargs):
            return REGISTRY.change_token(node_type, kwargs)

        def load_unet(self, unet_name, unique_id=None):
            def stock(inputs: dict):
                return stock_cls().load_unet(inputs["unet_name"], "default")
            kwargs = {"unet_name": unet_name}
            if unique_id is not None:
                kwargs["unique_id"] = unique_id
            return nodes.run_broker(stock, node_type, "model", kwargs)

    return UNetLoaderLP
