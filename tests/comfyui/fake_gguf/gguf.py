"""A stand-in for the parts of the `gguf` package (gguf-py) that ComfyUI-GGUF's
loader uses, for tests on machines without it (Debian 12 has no python3-gguf).

Shaped like gguf-py 0.19.0 (gguf/constants.py, gguf/gguf_reader.py): the
reader maps the file with numpy.memmap and each tensor's `data` is a view of
it, typed for F32/F16/F64/I8-I64 in the logical shape (dims reversed), and
uint8 in the byte shape (*leading dims, bytes per row) for quantised types
and BF16. Written for distorch's tests; little-endian v2/v3 files only.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Dict, List, Optional, Tuple

import numpy as np


class GGMLQuantizationType(IntEnum):
    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q8_1 = 9
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    Q8_K = 15
    I8 = 24
    I16 = 25
    I32 = 26
    I64 = 27
    F64 = 28
    BF16 = 30


# (elements per block, bytes per block), from ggml's block structs.
GGML_QUANT_SIZES: Dict[GGMLQuantizationType, Tuple[int, int]] = {
    GGMLQuantizationType.F32: (1, 4), GGMLQuantizationType.F16: (1, 2),
    GGMLQuantizationType.Q4_0: (32, 18), GGMLQuantizationType.Q4_1: (32, 20),
    GGMLQuantizationType.Q5_0: (32, 22), GGMLQuantizationType.Q5_1: (32, 24),
    GGMLQuantizationType.Q8_0: (32, 34), GGMLQuantizationType.Q8_1: (32, 36),
    GGMLQuantizationType.Q2_K: (256, 84), GGMLQuantizationType.Q3_K: (256, 110),
    GGMLQuantizationType.Q4_K: (256, 144), GGMLQuantizationType.Q5_K: (256, 176),
    GGMLQuantizationType.Q6_K: (256, 210), GGMLQuantizationType.Q8_K: (256, 292),
    GGMLQuantizationType.I8: (1, 1), GGMLQuantizationType.I16: (1, 2),
    GGMLQuantizationType.I32: (1, 4), GGMLQuantizationType.I64: (1, 8),
    GGMLQuantizationType.F64: (1, 8), GGMLQuantizationType.BF16: (1, 2),
}

_TYPED = {GGMLQuantizationType.F32: np.float32, GGMLQuantizationType.F16: np.float16,
          GGMLQuantizationType.F64: np.float64, GGMLQuantizationType.I8: np.int8,
          GGMLQuantizationType.I16: np.int16, GGMLQuantizationType.I32: np.int32,
          GGMLQuantizationType.I64: np.int64}


class GGUFValueType(IntEnum):
    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


_SCALARS = {GGUFValueType.UINT8: "<u1", GGUFValueType.INT8: "<i1", GGUFValueType.UINT16: "<u2",
            GGUFValueType.INT16: "<i2", GGUFValueType.UINT32: "<u4", GGUFValueType.INT32: "<i4",
            GGUFValueType.FLOAT32: "<f4", GGUFValueType.BOOL: "<u1", GGUFValueType.UINT64: "<u8",
            GGUFValueType.INT64: "<i8", GGUFValueType.FLOAT64: "<f8"}


class ReaderField:
    """One metadata entry as gguf-py keeps it: `parts` are numpy views of
    the encoding, `data` indexes the parts that hold values, `types` is the
    value type (then the element type, for arrays)."""

    def __init__(self, name: str, parts: List[np.ndarray], data: List[int],
                 types: List[GGUFValueType]) -> None:
        self.name = name
        self.parts = parts
        self.data = data
        self.types = types


class ReaderTensor:
    def __init__(self, name: str, tensor_type: GGMLQuantizationType, shape: np.ndarray,
                 n_elements: int, n_bytes: int, data_offset: int, data: np.ndarray) -> None:
        self.name = name
        self.tensor_type = tensor_type
        self.shape = shape            # ggml order: ne[0] (row length) first
        self.n_elements = n_elements
        self.n_bytes = n_bytes
        self.data_offset = data_offset
        self.data = data


class GGUFReader:
    def __init__(self, path, mode: str = "r") -> None:
        self.data = np.memmap(path, mode=mode)
        if bytes(self.data[:4]) != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", self.data, 4)
        if version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {version} is not supported here")
        self.fields: Dict[str, ReaderField] = {}
        offs = 24
        for _ in range(n_kv):
            field, offs = self._read_field(offs)
            self.fields[field.name] = field
        infos = []
        for _ in range(n_tensors):
            name, offs = self._read_string(offs)
            (n_dims,) = struct.unpack_from("<I", self.data, offs)
            dims = self._view(offs + 4, "<u8", n_dims)
            offs += 4 + 8 * n_dims
            ggml_type, rel = struct.unpack_from("<IQ", self.data, offs)
            offs += 12
            infos.append((name, dims, GGMLQuantizationType(ggml_type), rel))
        alignment = 32
        if "general.alignment" in self.fields:
            alignment = int(self.fields["general.alignment"].parts[-1][0])
        start = offs + (-offs % alignment)
        self.tensors = [self._tensor(start, *info) for info in infos]

    def get_field(self, key: str) -> Optional[ReaderField]:
        return self.fields.get(key)

    def _view(self, offset: int, dtype: str, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        return self.data[offset:offset + size].view(dtype)

    def _read_string(self, offs: int) -> Tuple[str, int]:
        (length,) = struct.unpack_from("<Q", self.data, offs)
        return bytes(self.data[offs + 8:offs + 8 + length]).decode("utf-8"), offs + 8 + length

    def _read_value(self, offs: int, vtype: GGUFValueType, parts: List[np.ndarray],
                    data: List[int], types: List[GGUFValueType]) -> int:
        if vtype == GGUFValueType.STRING:
            parts.append(self._view(offs, "<u8", 1))
            length = int(parts[-1][0])
            parts.append(self._view(offs + 8, "<u1", length))
            data.append(len(parts) - 1)
            return offs + 8 + length
        if vtype == GGUFValueType.ARRAY:
            element, count = struct.unpack_from("<IQ", self.data, offs)
            parts += [self._view(offs, "<u4", 1), self._view(offs + 4, "<u8", 1)]
            types.append(GGUFValueType(element))
            offs += 12
            for _ in range(count):
                offs = self._read_value(offs, GGUFValueType(element), parts, data, [])
            return offs
        parts.append(self._view(offs, _SCALARS[vtype], 1))
        data.append(len(parts) - 1)
        return offs + parts[-1].nbytes

    def _read_field(self, offs: int) -> Tuple[ReaderField, int]:
        start = offs
        name, offs = self._read_string(offs)
        (vtype,) = struct.unpack_from("<I", self.data, offs)
        parts = [self._view(start, "<u8", 1), self.data[start + 8:offs],
                 self._view(offs, "<u4", 1)]
        data: List[int] = []
        types = [GGUFValueType(vtype)]
        offs = self._read_value(offs + 4, GGUFValueType(vtype), parts, data, types)
        return ReaderField(name, parts, data, types), offs

    def _tensor(self, start: int, name: str, dims: np.ndarray, ggml_type: GGMLQuantizationType,
                rel: int) -> ReaderTensor:
        n_elements = 1
        for d in dims.tolist():
            n_elements *= int(d)
        block, size = GGML_QUANT_SIZES[ggml_type]
        n_bytes = n_elements * size // block
        np_dims = tuple(reversed(dims.tolist()))
        if ggml_type in _TYPED:
            data = self._view(start + rel, _TYPED[ggml_type], n_elements).reshape(np_dims)
        else:
            byte_shape = (*np_dims[:-1], np_dims[-1] // block * size)
            data = self.data[start + rel:start + rel + n_bytes].reshape(byte_shape)
        return ReaderTensor(name, ggml_type, dims, n_elements, n_bytes, start + rel, data)
