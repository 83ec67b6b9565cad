"""Builds the stand-in node classes: the real nodes' names, INPUT_TYPES
names/order/defaults, RETURN_TYPES/RETURN_NAMES and FUNCTION. Each run records
what WanVideoWrapper's code would see: its module's `device` and
`offload_device` globals, ComfyUI's get_torch_device() and its arguments."""
import sys

import comfy.model_management as mm

CALLS = []  # (node, module device, module offload_device, get_torch_device(), kwargs)


def node(module_name, name, required, optional, returns, names, function, result=None):
    def INPUT_TYPES(cls):
        return {"required": dict(required), "optional": dict(optional)}

    def run(self, **kwargs):
        module = sys.modules[module_name]
        CALLS.append((name, module.device, module.offload_device, mm.get_torch_device(), dict(kwargs)))
        if result is not None:
            return result(kwargs)
        return tuple(f"{name}:{n}" for n in names)

    return type(name, (), {"__module__": module_name, "INPUT_TYPES": classmethod(INPUT_TYPES),
                           "RETURN_TYPES": tuple(returns),
                           "RETURN_NAMES": tuple(names), "FUNCTION": function,
                           "CATEGORY": "WanVideoWrapper", function: run})


def combo(options, default=None):
    return (list(options), {"default": default if default is not None else options[0]})


INT = lambda d, lo=0, hi=10000, step=1: ("INT", {"default": d, "min": lo, "max": hi, "step": step})  # noqa: E731
FLOAT = lambda d, lo=0.0, hi=10.0, step=0.001: (  # noqa: E731
    "FLOAT", {"default": d, "min": lo, "max": hi, "step": step})
BOOL = lambda d: ("BOOLEAN", {"default": d})  # noqa: E731
TEXT = ("STRING", {"default": "", "multiline": True})
LOAD_DEVICE = combo(["main_device", "offload_device"], "main_device")
