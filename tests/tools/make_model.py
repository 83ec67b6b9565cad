#!/usr/bin/env python3
"""Seeded synthetic model files for distorch tests: safetensors and GGUF.

Command line (numpy only; run with /usr/bin/python3)::

    make_model.py --arch flux --size 2GiB --dtype bf16 --seed 1 --out flux.safetensors
    make_model.py --arch tiny --size 1MiB --format gguf --out tiny.gguf

The layout (model_layouts.py) has real key names; its width and depth are
scaled so the file approaches ``--size`` from below. Tensor data is written in
state-dict order (offsets grow in layout order) while the header's JSON keys
are sorted by name, as the safetensors library writes them
(``--header-order model`` keeps layout order instead). Float data is random
but finite (|x| in [0.125, 0.25)); the same seed gives the same bytes. Data is
streamed in chunks, so multi-GiB files need little memory.

As a library (``sys.path.insert(0, "tests/tools")``)::

    from make_model import write_safetensors, write_gguf
    write_safetensors(path, {"w": np.zeros((2, 3), np.float16)}, {"k": "v"})
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
from dataclasses import dataclass
from typing import BinaryIO, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_layouts  # noqa: E402  (needs the path above)

ST_DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
                  "I8": 1, "U8": 1, "I16": 2, "I32": 4, "I64": 8, "BOOL": 1}
_NUMPY_TO_ST = {"float64": "F64", "float32": "F32", "float16": "F16", "int8": "I8",
                "uint8": "U8", "int16": "I16", "int32": "I32", "int64": "I64",
                "bool": "BOOL"}
# GGML type name -> (id, block size, bytes per block), from ggml-common.h.
GGML_TYPES = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20),
              "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34),
              "Q2_K": (10, 256, 84), "Q3_K": (11, 256, 110), "Q4_K": (12, 256, 144),
              "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210), "I8": (24, 1, 1),
              "I16": (25, 1, 2), "I32": (26, 1, 4), "I64": (27, 1, 8), "F64": (28, 1, 8),
              "BF16": (30, 1, 2)}
_CHUNK = 8 << 20


@dataclass(frozen=True)
class TensorSpec:
    """One tensor to write: dtype is a safetensors name (F16) or, for GGUF, a
    GGML type name (Q8_0); shape is in PyTorch order."""

    name: str
    dtype: str
    shape: Tuple[int, ...]

    @property
    def nbytes(self) -> int:
        elements = int(np.prod(self.shape, dtype=object)) if self.shape else 1
        if self.dtype in ST_DTYPE_SIZES:
            return elements * ST_DTYPE_SIZES[self.dtype]
        _, block, size = GGML_TYPES[self.dtype]
        if self.shape and self.shape[-1] % block:
            raise ValueError(f"{self.name}: rows of {self.shape[-1]} are not whole "
                             f"{self.dtype} blocks of {block}")
        return elements // block * size


Fill = Callable[[TensorSpec, BinaryIO], None]


def parse_size(text: str) -> int:
    """'2GiB', '512m', '1.5 gb', '4096' -> bytes (binary multiples)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"'{text}': give a size such as 2GiB or 512MiB")
    power = " kmgt".index(match.group(2) or " ")
    return int(float(match.group(1)) * 1024 ** power)


class RandomFill:
    """Writes seeded random tensor bytes; floats get finite values."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def __call__(self, spec: TensorSpec, out: BinaryIO) -> None:
        # (numpy view, mask, bits): keep sign and low mantissa bits, fix the
        # exponent so each value is +-[0.125, 0.25).
        patterns = {"F16": (np.uint16, 0x83FF, 0x3000), "BF16": (np.uint16, 0x807F, 0x3E00),
                    "F32": (np.uint32, 0x807FFFFF, 0x3E000000),
                    "F64": (np.uint64, 0x800FFFFFFFFFFFFF, 0x3FC0000000000000)}
        remaining = spec.nbytes
        while remaining:
            n = min(remaining, _CHUNK)
            raw = self._rng.bytes(n)
            if spec.dtype in patterns:
                view, mask, bits = patterns[spec.dtype]
                words = np.frombuffer(raw, dtype=np.dtype(view).newbyteorder("<"))
                raw = ((words & view(mask)) | view(bits)).tobytes()
            out.write(raw)
            remaining -= n


def _padded(header: bytes, alignment: int = 8) -> bytes:
    return header + b" " * (-len(header) % alignment)


def safetensors_header(specs: Sequence[TensorSpec], metadata: Optional[Mapping[str, str]] = None,
                       sort_header_keys: bool = True) -> bytes:
    """The JSON header for specs laid out back to back in the given order."""
    entries, offset = {}, 0
    for spec in specs:
        if spec.dtype not in ST_DTYPE_SIZES:
            raise ValueError(f"{spec.name}: '{spec.dtype}' is not a safetensors dtype")
        if spec.name in entries or spec.name == "__metadata__":
            raise ValueError(f"duplicate or reserved tensor name '{spec.name}'")
        entries[spec.name] = {"dtype": spec.dtype, "shape": list(spec.shape),
                              "data_offsets": [offset, offset + spec.nbytes]}
        offset += spec.nbytes
    names = sorted(entries) if sort_header_keys else list(entries)
    ordered: Dict[str, object] = {}
    if metadata:
        ordered["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    ordered.update((name, entries[name]) for name in names)
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)
    return _padded(text.encode("utf-8"))


def write_safetensors_specs(path: str, specs: Sequence[TensorSpec], fill: Fill,
                            metadata: Optional[Mapping[str, str]] = None,
                            sort_header_keys: bool = True) -> int:
    """Writes a safetensors file whose data fill() streams; returns its size."""
    header = safetensors_header(specs, metadata, sort_header_keys)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(header)))
        out.write(header)
        for spec in specs:
            start = out.tell()
            fill(spec, out)
            if out.tell() - start != spec.nbytes:
                raise RuntimeError(f"{spec.name}: fill wrote {out.tell() - start} bytes, "
                                   f"not {spec.nbytes}")
        return out.tell()


def write_safetensors(path: str, tensors: Mapping[str, np.ndarray],
                      metadata: Optional[Mapping[str, str]] = None, *,
                      dtypes: Optional[Mapping[str, str]] = None,
                      sort_header_keys: bool = True) -> int:
    """Writes exact arrays, data in the mapping's order. numpy has no bfloat16
    or float8: pass their bits as uint16/uint8 arrays and name the dtype in
    ``dtypes`` ({"w": "BF16"})."""
    dtypes = dtypes or {}
    arrays = {name: np.ascontiguousarray(a) for name, a in tensors.items()}
    specs = []
    for name, array in arrays.items():
        dtype = dtypes.get(name) or _NUMPY_TO_ST.get(array.dtype.name)
        if dtype is None:
            raise ValueError(f"{name}: numpy dtype {array.dtype} has no safetensors name")
        if array.dtype.itemsize != ST_DTYPE_SIZES[dtype]:
            raise ValueError(f"{name}: {array.dtype} items are not {dtype} sized")
        specs.append(TensorSpec(name, dtype, tuple(array.shape)))

    def fill(spec: TensorSpec, out: BinaryIO) -> None:
        array = arrays[spec.name]
        out.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())

    return write_safetensors_specs(path, specs, fill, metadata, sort_header_keys)


def _gguf_string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _gguf_value(value: object) -> Tuple[int, bytes]:
    """(GGUF value type, encoded value) for str, bool, int, float and lists."""
    if isinstance(value, str):
        return 8, _gguf_string(value)
    if isinstance(value, bool):
        return 7, struct.pack("<B", value)
    if isinstance(value, int):
        if 0 <= value < 1 << 32:
            return 4, struct.pack("<I", value)
        return 11, struct.pack("<q", value)
    if isinstance(value, float):
        return 6, struct.pack("<f", value)
    if isinstance(value, (list, tuple)):
        encoded = [_gguf_value(item) for item in value]
        item_type = encoded[0][0] if encoded else 4
        if any(t != item_type for t, _ in encoded):
            raise ValueError("GGUF arrays hold one type")
        return 9, struct.pack("<IQ", item_type, len(encoded)) + b"".join(e for _, e in encoded)
    raise ValueError(f"no GGUF encoding for {type(value).__name__}")


def write_gguf(path: str, specs: Sequence[TensorSpec], fill: Fill,
               metadata: Mapping[str, object], alignment: int = 32) -> int:
    """Writes a GGUF v3 file: specs' dtypes are GGML type names, shapes are
    PyTorch order (stored reversed, as ggml does). Returns the file size."""
    meta = dict(metadata)
    if alignment != 32:
        meta["general.alignment"] = alignment
    body = [b"GGUF", struct.pack("<IQQ", 3, len(specs), len(meta))]
    for key, value in meta.items():
        value_type, encoded = _gguf_value(value)
        body += [_gguf_string(key), struct.pack("<I", value_type), encoded]
    offset = 0
    for spec in specs:
        dims = tuple(reversed(spec.shape)) or (1,)
        body += [_gguf_string(spec.name), struct.pack("<I", len(dims)),
                 struct.pack(f"<{len(dims)}Q", *dims),
                 struct.pack("<IQ", GGML_TYPES[spec.dtype][0], offset)]
        offset += spec.nbytes + (-spec.nbytes % alignment)
    header = b"".join(body)
    with open(path, "wb") as out:
        out.write(header + b"\0" * (-len(header) % alignment))
        for spec in specs:
            fill(spec, out)
            out.write(b"\0" * (-spec.nbytes % alignment))
        return out.tell()


def gguf_types(layout: Iterable[Tuple[str, Tuple[int, ...]]]) -> List[TensorSpec]:
    """ComfyUI-GGUF-like typing: 1-D in F32, matrices alternately Q8_0/Q4_0,
    whatever cannot be blocked (convs, odd rows) in F16."""
    specs, matrices = [], 0
    for name, shape in layout:
        if len(shape) <= 1:
            dtype = "F32"
        elif len(shape) == 2 and shape[-1] % 32 == 0:
            dtype = ("Q8_0", "Q4_0")[matrices % 2]
            matrices += 1
        else:
            dtype = "F16"
        specs.append(TensorSpec(name, dtype, tuple(shape)))
    return specs


def scaled_specs(arch: str, target_bytes: int, dtype: str, fmt: str
                 ) -> Tuple[List[TensorSpec], int, int]:
    """The arch's layout at the largest (depth, width) whose data fits
    target_bytes (full depth first). Returns (specs, width, depth)."""
    layout_fn, full_width, full_depth, step, _ = model_layouts.ARCHS[arch]

    def specs_for(width: int, depth: int) -> List[TensorSpec]:
        layout = layout_fn(width, depth)
        if fmt == "gguf":
            return gguf_types(layout)
        return [TensorSpec(name, dtype, shape) for name, shape in layout]

    def size(width: int, depth: int) -> int:
        specs = specs_for(width, depth)
        return sum(s.nbytes for s in specs) + 128 * len(specs)  # + header

    def deepest(width: int) -> int:  # most blocks that fit at this width, or 0
        lo, hi = 0, full_depth
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if size(width, mid) <= target_bytes:
                lo = mid
            else:
                hi = mid - 1
        return lo

    # Widest layout at full depth, then one or two steps wider with fewer
    # blocks if that lands closer to the target.
    lo, hi = 1, 8 * full_width // step  # width = k * step
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(mid * step, full_depth) <= target_bytes:
            lo = mid
        else:
            hi = mid - 1
    candidates = [(lo * step, full_depth)]
    for k in (lo + 1, lo + 2):
        depth = deepest(k * step)
        if depth:
            candidates.append((k * step, depth))
    if size(step, full_depth) > target_bytes:  # narrower than real models
        width = step
        while width > 8 and size(width, 1) > target_bytes:
            width //= 2
        candidates = [(width, max(1, deepest(width)))]
    width, depth = max(candidates, key=lambda c: (size(*c) <= target_bytes, size(*c)))
    return specs_for(width, depth), width, depth


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=sorted(model_layouts.ARCHS), default="tiny")
    parser.add_argument("--size", type=parse_size, default=parse_size("4MiB"),
                        help="approximate file size, e.g. 2GiB (default 4MiB)")
    parser.add_argument("--dtype", choices=("f16", "bf16", "f32"), default="f16")
    parser.add_argument("--format", choices=("safetensors", "gguf"), default="safetensors")
    parser.add_argument("--header-order", choices=("sorted", "model"), default="sorted",
                        help="safetensors JSON key order (data is always in model order)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    specs, width, depth = scaled_specs(args.arch, args.size, args.dtype.upper(), args.format)
    fill = RandomFill(args.seed)
    if args.format == "gguf":
        arch_name = model_layouts.ARCHS[args.arch][4]
        metadata = {"general.architecture": arch_name,
                    "general.name": f"distorch synthetic {args.arch}",
                    "general.quantization_version": 2,
                    "general.file_type": 7}
        written = write_gguf(args.out, specs, fill, metadata)
    else:
        metadata = {"format": "pt", "distorch.arch": args.arch,
                    "distorch.seed": str(args.seed)}
        written = write_safetensors_specs(args.out, specs, fill, metadata,
                                          sort_header_keys=args.header_order == "sorted")
    print(f"wrote {args.out}: {args.arch} width {width} depth {depth}, "
          f"{len(specs)} tensors, {written} bytes")
    if written > args.size:
        print(f"note: the smallest {args.arch} layout is bigger than --size", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
