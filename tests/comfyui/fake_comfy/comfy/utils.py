import json
import struct

import numpy as np
import torch

_NP = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def load_torch_file(ckpt, safe_load=False, device=None, return_metadata=False):
    with open(ckpt, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
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


def set_attr(obj, attr, value):
    names = attr.split(".")
    for name in names[:-1]:
        obj = getattr(obj, name)
    prev = getattr(obj, names[-1])
    setattr(obj, names[-1], value)
    return prev


def set_attr_param(obj, attr, value):
    return set_attr(obj, attr, torch.nn.Parameter(value, requires_grad=False))


def copy_to_param(obj, attr, value):
    get_attr(obj, attr).data.copy_(value)


def string_to_seed(data):
    return sum(ord(c) for c in data)


def state_dict_prefix_replace(sd, replace, filter_keys=False):
    out = {} if filter_keys else sd
    for old, new in replace.items():
        for k in [k for k in sd if k.startswith(old)]:
            out[new + k[len(old):]] = sd.pop(k)
    return out
