import json
import struct

import numpy as np
import torch

_NP = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def load_torch_file(ckpt, safe_load=False, device=None, return_metadata=False):
    with open(ckpt, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    metadata = header.pop("__metadata__", None)
    sd = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[start:end], dtype=_NP[info["dtype"]]).reshape(info["shape"]).copy()
        sd[name] = torch.from_numpy(arr)
    return (sd, metadata) if return_metadata else sd


def get_attr(obj, attr):
    for name in attr.split("."):
        obj = getattr(obj, name)
    return obj


ATTR_UNSET = {}


def resolve_attr(obj, attr):
    attrs = attr.split(".")
    for name in attrs[:-1]:
        obj = getattr(obj, name)
    return obj, attrs[-1]


# ComfyUI 0.33.0 comfy/utils.py set_attr / set_attr_param: replace the module's
# attribute (a new Parameter over `value`: no write into the old tensor).
def set_attr(obj, attr, value):
    obj, name = resolve_attr(obj, attr)
    prev = getattr(obj, name, ATTR_UNSET)
    if value is ATTR_UNSET:
        delattr(obj, name)
    else:
        setattr(obj, name, value)
    return prev


def set_attr_param(obj, attr, value):
    if (not torch.is_inference_mode_enabled()) and value.is_inference():
        value = value.clone()
    return set_attr(obj, attr, torch.nn.Parameter(value, requires_grad=False))


# ComfyUI 0.33.0 comfy/utils.py copy_to_param: writes `value` INTO the existing
# parameter's memory. On a broker weight (read-only shared mapping) this is the
# SIGSEGV of issue 9; ModelPatcher reaches it from patch_weight_to_device(
# inplace_update=True), unpatch_model/partially_unload (backups with
# inplace_update), patch_hook_weight_to_device, patch_cached_hook_weights and
# unpatch_hooks.
def copy_to_param(obj, attr, value):
    attrs = attr.split(".")
    for name in attrs[:-1]:
        obj = getattr(obj, name)
    prev = getattr(obj, attrs[-1])
    prev.data.copy_(value)


_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64", torch.int32: "I32",
              torch.uint8: "U8"}


# ComfyUI 0.33.0 comfy/utils.py save_torch_file -> safetensors.torch.save_file.
# What safetensors does per tensor is the part that matters here: a tensor
# whose .device is not "cpu" is read through .to("cpu") (its _tobytes), which
# is how ModelPatcher's LazyCastingParam (device "comfy-lazy-caster") gets
# patch_weight_to_device(return_weight=True) called. Header keys sorted, data
# in key order, like safetensors.
def save_torch_file(sd, ckpt, metadata=None):
    header, blobs, offset = {}, [], 0
    for name in sorted(sd):
        t = sd[name]
        if t.device.type != "cpu":
            t = t.to("cpu")
        data = t.detach().contiguous().numpy().tobytes()
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(ckpt, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for data in blobs:
            f.write(data)


def string_to_seed(data):
    return sum(ord(c) for c in data)


def state_dict_prefix_replace(sd, replace, filter_keys=False):
    out = {} if filter_keys else sd
    for old, new in replace.items():
        for k in [k for k in sd if k.startswith(old)]:
            out[new + k[len(old):]] = sd.pop(k)
    return out
