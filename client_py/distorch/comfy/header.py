"""Reads a safetensors header (names, dtypes, shapes, __metadata__) without
touching tensor data, and builds meta-device stand-ins from it."""

from __future__ import annotations

import json
import struct
from typing import Dict, Optional, Tuple

import torch

MAX_HEADER_BYTES = 100 << 20  # the daemon's own limit is stricter; this only guards memory

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
for _name, _attr in (("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2")):
    if hasattr(torch, _attr):
        _DTYPES[_name] = getattr(torch, _attr)


class HeaderError(ValueError):
    pass


def torch_dtype(name: str) -> torch.dtype:
    try:
        return _DTYPES[name]
    except KeyError:
        raise HeaderError(f"safetensors dtype {name!r} has no torch dtype here") from None


def read_safetensors_header(path: str) -> Tuple[Dict[str, Tuple[str, Tuple[int, ...]]],
                                                Dict[str, str]]:
    """{name: (dtype, shape)} in file order, and the __metadata__ dict."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise HeaderError(f"{path}: too short for a safetensors file")
        (length,) = struct.unpack("<Q", raw)
        if length > MAX_HEADER_BYTES:
            raise HeaderError(f"{path}: header of {length} bytes is implausibly large")
        doc = json.loads(f.read(length))
    metadata = doc.pop("__metadata__", None) or {}
    entries = sorted(doc.items(), key=lambda kv: kv[1]["data_offsets"][0])
    tensors = {name: (info["dtype"], tuple(int(d) for d in info["shape"]))
               for name, info in entries}
    return tensors, metadata


def is_safetensors(path: str) -> bool:
    return str(path).lower().endswith((".safetensors", ".sft"))


def is_gguf(path: str) -> bool:
    return str(path).lower().endswith(".gguf")


def meta_state_dict(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """A state dict of meta tensors with the file's names, shapes and dtypes."""
    tensors, metadata = read_safetensors_header(path)
    sd = {name: torch.empty(shape, dtype=torch_dtype(dtype), device="meta")
          for name, (dtype, shape) in tensors.items()}
    return sd, metadata


def block_of(tensor_name: str) -> str:
    """The broker's block name: the tensor name minus its last component."""
    return tensor_name.rsplit(".", 1)[0] if "." in tensor_name else tensor_name


def metadata_or_none(metadata: Optional[Dict[str, str]]) -> Optional[Dict[str, str]]:
    return metadata if metadata else None
