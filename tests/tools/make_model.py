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

    from make_model import write_safetensors, write_gguf, write_gguf_arrays
    write_safetensors(path, {"w": np.zeros((2, 3), np.float16)}, {"k": "v"})
    write_gguf_arrays(path, {"w": ("Q8_0", np.ones((2, 64), np.float32))}, {})

GGUF files hold genuine GGML blocks: Q8_0, Q4_0 and Q4_K tensors are
quantised from float values (QUANTIZERS), other quantised types get random
bytes of the right length.
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


# ---------------------------------------------------------------- GGML blocks
# Quantisers for the block layouts of ggml's src/ggml-common.h, written from
# those struct definitions (little-endian, fp16 scales):
#   block_q8_0 {half d; int8 qs[32]}                    x = d * qs[i]
#   block_q4_0 {half d; uint8 qs[16]}                   x = d * (nibble - 8);
#       qs[j] low nibble is element j, high nibble element j + 16
#   block_q4_K {half d; half dmin; uint8 scales[12]; uint8 qs[128]}  (256 elements)
#       8 sub-blocks of 32, each with a 6-bit scale sc and 6-bit min m packed
#       in scales[12]; x = d * sc * nibble - dmin * m. qs holds 4 groups of 32
#       bytes: low nibbles are sub-block 2g, high nibbles sub-block 2g + 1.
# The quantisers are simple (one pass, no error search like ggml's
# make_qkx2_quants); the bytes are valid blocks that any GGML reader decodes.


def _blocks(values: np.ndarray, block: int) -> np.ndarray:
    rows = np.asarray(values, dtype=np.float32)
    if rows.ndim == 0 or rows.shape[-1] % block:
        raise ValueError(f"rows of {rows.shape[-1:]} elements are not whole blocks of {block}")
    return rows.reshape(-1, block)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """C's roundf (ggml rounds this way; numpy's round is to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _safe_inverse(d: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(d == 0, 0.0, 1.0 / np.where(d == 0, 1.0, d)).astype(np.float32)


def quantize_q8_0(values: np.ndarray) -> bytes:
    b = _blocks(values, 32)
    d = (np.abs(b).max(axis=1, keepdims=True) / 127).astype(np.float32)
    qs = np.clip(_round_half_away(b * _safe_inverse(d)), -127, 127).astype(np.int8)
    return np.concatenate([d.astype("<f2").view(np.uint8), qs.view(np.uint8)], axis=1).tobytes()


def quantize_q4_0(values: np.ndarray) -> bytes:
    b = _blocks(values, 32)
    # The value of largest magnitude, sign kept, maps to nibble 0 (-8 * d).
    peak = np.take_along_axis(b, np.abs(b).argmax(axis=1)[:, None], axis=1)
    d = (peak / -8).astype(np.float32)
    q = np.clip(np.floor(b * _safe_inverse(d) + 8.5), 0, 15).astype(np.uint8)
    qs = q[:, :16] | (q[:, 16:] << 4)
    return np.concatenate([d.astype("<f2").view(np.uint8), qs], axis=1).tobytes()


def _pack_k_scales(sc: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(n, 8) 6-bit scales and mins -> (n, 12) bytes, ggml's get_scale_min_k4
    order: sub-blocks 0-3 in the low 6 bits of bytes 0-3 (scale) and 4-7
    (min); sub-blocks 4-7 in bytes 8-11 (low nibble scale, high nibble min)
    with their top 2 bits in the spare top bits of bytes 0-7."""
    out = np.zeros((sc.shape[0], 12), np.uint8)
    out[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 0xF) | ((m[:, 4:8] & 0xF) << 4)
    return out


def quantize_q4_k(values: np.ndarray) -> bytes:
    b = _blocks(values, 256)
    sub = b.reshape(-1, 8, 32)
    low = np.minimum(sub.min(axis=2), 0)            # x = scale * q - min, q in 0..15
    scale = (sub.max(axis=2) - low) / 15
    d = (scale.max(axis=1, keepdims=True) / 63).astype("<f2")
    dmin = (-low).max(axis=1, keepdims=True).astype(np.float32) / 63
    dmin = dmin.astype("<f2")
    sc = np.clip(_round_half_away(scale * _safe_inverse(d.astype(np.float32))), 0, 63)
    m = np.clip(_round_half_away(-low * _safe_inverse(dmin.astype(np.float32))), 0, 63)
    step = d.astype(np.float32) * sc                # the decoder's own products
    offset = dmin.astype(np.float32) * m
    q = _round_half_away((sub + offset[:, :, None]) * _safe_inverse(step)[:, :, None])
    q = np.clip(q, 0, 15).astype(np.uint8).reshape(-1, 4, 2, 32)
    qs = (q[:, :, 0, :] | (q[:, :, 1, :] << 4)).reshape(-1, 128)
    return np.concatenate([d.view(np.uint8), dmin.view(np.uint8),
                           _pack_k_scales(sc.astype(np.uint8), m.astype(np.uint8)), qs],
                          axis=1).tobytes()


QUANTIZERS: Dict[str, Callable[[np.ndarray], bytes]] = {
    "Q8_0": quantize_q8_0, "Q4_0": quantize_q4_0, "Q4_K": quantize_q4_k}


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
        if spec.dtype in QUANTIZERS:
            self._quantised(spec, out)
            return
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

    def _quantised(self, spec: TensorSpec, out: BinaryIO) -> None:
        """Genuine blocks: random normal values (sigma 0.25), quantised."""
        _, block, size = GGML_TYPES[spec.dtype]
        blocks = spec.nbytes // size
        per_chunk = max(1, _CHUNK // size)
        for first in range(0, blocks, per_chunk):
            n = min(per_chunk, blocks - first) * block
            values = self._rng.standard_normal(n, dtype=np.float32) * 0.25
            out.write(QUANTIZERS[spec.dtype](values))


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


def write_gguf_arrays(path: str, tensors: Mapping[str, Tuple[str, np.ndarray]],
                      metadata: Mapping[str, object], alignment: int = 32) -> int:
    """Writes {name: (GGML type, float array in PyTorch order)}: F32/F16/BF16
    are stored as they are, Q8_0/Q4_0/Q4_K quantised (QUANTIZERS). Returns
    the file size."""
    specs, data = [], {}
    for name, (ggml_type, array) in tensors.items():
        array = np.asarray(array, dtype=np.float32)
        if ggml_type in QUANTIZERS:
            raw = QUANTIZERS[ggml_type](array)
        elif ggml_type == "BF16":  # truncation is a valid bf16 value too
            raw = (array.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
        else:
            raw = array.astype({"F32": "<f4", "F16": "<f2"}[ggml_type]).tobytes()
        specs.append(TensorSpec(name, ggml_type, tuple(array.shape)))
        if len(raw) != specs[-1].nbytes:
            raise ValueError(f"{name}: {len(raw)} bytes, the {ggml_type} layout says "
                             f"{specs[-1].nbytes}")
        data[name] = raw
    return write_gguf(path, specs, lambda spec, out: out.write(data[spec.name]), metadata,
                      alignment)


def gguf_types(layout: Iterable[Tuple[str, Tuple[int, ...]]]) -> List[TensorSpec]:
    """ComfyUI-GGUF-like typing: 1-D in F32, matrices in turn Q8_0, Q4_K (rows
    of 256) and Q4_0, whatever cannot be blocked (convs, odd rows) in F16."""
    specs, matrices = [], 0
    for name, shape in layout:
        if len(shape) <= 1:
            dtype = "F32"
        elif len(shape) == 2 and shape[-1] % 32 == 0:
            dtype = ("Q8_0", "Q4_K", "Q4_0")[matrices % 3]
            if dtype == "Q4_K" and shape[-1] % 256:
                dtype = "Q8_0"
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
