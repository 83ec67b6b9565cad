"""Tensor lists for planning: TensorMeta messages from a safetensors header or
from tensors in memory. Only what Plan needs; the daemon validates files
strictly when it loads them."""
from __future__ import annotations

import json
import os
import struct
from typing import Any, Iterable, List, Mapping

from .errors import DistorchError
from .v1 import broker_pb2 as pb

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # as the daemon: kMaxSafetensorsHeaderBytes


# ------------------------------------------------------------------ plan input

_ST_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1,
             "U8": 1, "I16": 2, "I32": 4, "I64": 8, "BOOL": 1}
_DTYPE_NAMES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
                "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "int8": "I8",
                "uint8": "U8", "int16": "I16", "int32": "I32", "int64": "I64", "bool": "BOOL"}


def read_safetensors_metas(path: str) -> List[Any]:
    """TensorMeta per tensor of a safetensors file, in data order. Only what
    planning needs; the daemon validates files strictly when it loads them."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        prefix = f.read(8)
        if len(prefix) != 8:
            raise DistorchError("INVALID_ARGUMENT", f"'{path}' is too short to be safetensors")
        (n,) = struct.unpack("<Q", prefix)
        if n > _MAX_HEADER_BYTES or 8 + n > size:
            raise DistorchError("INVALID_ARGUMENT",
                                f"'{path}': header length {n} is not plausible for a "
                                f"{size}-byte safetensors file")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise DistorchError("INVALID_ARGUMENT", f"'{path}': header is not JSON: {e}") from None
    metas = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        metas.append(pb.TensorMeta(name=name, dtype=entry["dtype"],
                                   shape=[int(d) for d in entry["shape"]],
                                   nbytes=end - begin, file_offset=8 + n + begin))
    metas.sort(key=lambda m: m.file_offset)
    return metas


def tensor_metas(source: Any) -> List[Any]:
    if isinstance(source, (str, os.PathLike)):
        return read_safetensors_metas(os.fspath(source))
    metas, offset = [], 0
    items: Iterable[Any] = source.items() if isinstance(source, Mapping) else source
    for item in items:
        if isinstance(item, pb.TensorMeta):
            metas.append(item)
            continue
        if isinstance(item, Mapping):
            name, dtype, shape = item["name"], str(item["dtype"]).upper(), list(item["shape"])
            nbytes = item.get("nbytes")
        else:
            name, tensor = item
            dtype = _DTYPE_NAMES.get(str(tensor.dtype).replace("torch.", ""), "")
            if not dtype:
                raise DistorchError("INVALID_ARGUMENT",
                                    f"tensor '{name}': dtype {tensor.dtype} has no safetensors name")
            shape, nbytes = list(tensor.shape), None
        if nbytes is None:
            count = 1
            for d in shape:
                count *= int(d)
            nbytes = count * _ST_SIZES.get(dtype, 1)
        metas.append(pb.TensorMeta(name=name, dtype=dtype, shape=[int(d) for d in shape],
                                   nbytes=int(nbytes), file_offset=offset))
        offset += int(nbytes)
    return metas
