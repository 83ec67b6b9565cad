"""Dequantisation shaped like ComfyUI-GGUF's dequant.py (city96/ComfyUI-GGUF
795e451, 2025-12-18): dequantize() takes the tensor's storage (uint8, byte
shape), cuts it into (blocks, bytes per block) rows and decodes them to the
logical shape. The block decoders are ours, from ggml's block structs
(src/ggml-common.h); tests/tools/make_model.py's quantisers write them."""
import torch

import gguf

TORCH_COMPATIBLE_QTYPES = (None, gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)


def is_torch_compatible(tensor):
    return tensor is None or getattr(tensor, "tensor_type", None) in TORCH_COMPATIBLE_QTYPES


def is_quantized(tensor):
    return not is_torch_compatible(tensor)


def dequantize_tensor(tensor, dtype=None, dequant_dtype=None):
    qtype = getattr(tensor, "tensor_type", None)
    oshape = getattr(tensor, "tensor_shape", tensor.shape)
    if qtype in TORCH_COMPATIBLE_QTYPES:
        return tensor.to(dtype)
    if qtype not in DEQUANTIZERS:
        raise NotImplementedError(f"the test GGUF module cannot dequantise {qtype!r}")
    dequant_dtype = dtype if dequant_dtype == "target" else dequant_dtype
    return dequantize(tensor.data, qtype, oshape, dtype=dequant_dtype).to(dtype)


def dequantize(data, qtype, oshape, dtype=None):
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    # The storage's own last dim: a wrong storage shape fails right here.
    rows = data.reshape((-1, data.shape[-1])).view(torch.uint8)
    blocks = rows.reshape((rows.numel() // type_size, type_size))
    return DEQUANTIZERS[qtype](blocks, block_size, type_size, dtype).reshape(oshape)


def _half(blocks, start):
    """The fp16 at byte `start` of every block, as a (n, 1) float tensor."""
    return blocks[:, start:start + 2].contiguous().view(torch.float16).to(torch.float32)


def _bf16(blocks, block_size, type_size, dtype=None):
    pairs = blocks.to(torch.int32)
    return ((pairs[:, 0] | (pairs[:, 1] << 8)) << 16).view(torch.float32).reshape(-1, 1)


def _q8_0(blocks, block_size, type_size, dtype=None):
    # {fp16 d; int8 qs[32]}: x = d * q
    d = _half(blocks, 0)
    q = blocks[:, 2:].contiguous().view(torch.int8).to(torch.float32)
    return (d * q).to(dtype or torch.float32)


def _q4_0(blocks, block_size, type_size, dtype=None):
    # {fp16 d; uint8 qs[16]}: element j is the low nibble of qs[j], element
    # j + 16 the high nibble; x = d * (nibble - 8)
    d = _half(blocks, 0)
    qs = blocks[:, 2:].to(torch.int32)
    q = torch.cat([qs & 0xF, qs >> 4], dim=1) - 8
    return (d * q.to(torch.float32)).to(dtype or torch.float32)


def _k_scales(scales):
    """(n, 12) packed bytes -> (n, 8) scales and mins, as ggml's
    get_scale_min_k4 reads them."""
    s = scales.to(torch.int32)
    sc = torch.cat([s[:, 0:4] & 63, (s[:, 8:12] & 0xF) | ((s[:, 0:4] >> 6) << 4)], dim=1)
    m = torch.cat([s[:, 4:8] & 63, (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)], dim=1)
    return sc.to(torch.float32), m.to(torch.float32)


def _q4_k(blocks, block_size, type_size, dtype=None):
    # {fp16 d; fp16 dmin; uint8 scales[12]; uint8 qs[128]} for 256 elements:
    # 8 sub-blocks of 32; qs is 4 groups of 32 bytes, the low nibbles being
    # sub-block 2g and the high nibbles sub-block 2g + 1;
    # x = d * sc[s] * nibble - dmin * m[s]
    n = blocks.shape[0]
    d, dmin = _half(blocks, 0), _half(blocks, 2)
    sc, m = _k_scales(blocks[:, 4:16])
    qs = blocks[:, 16:].to(torch.int32).reshape(n, 4, 1, 32)
    q = torch.cat([qs & 0xF, qs >> 4], dim=2).reshape(n, 8, 32).to(torch.float32)
    x = (d * sc).reshape(n, 8, 1) * q - (dmin * m).reshape(n, 8, 1)
    return x.reshape(n, 256).to(dtype or torch.float32)


DEQUANTIZERS = {
    gguf.GGMLQuantizationType.BF16: _bf16,
    gguf.GGMLQuantizationType.Q8_0: _q8_0,
    gguf.GGMLQuantizationType.Q4_0: _q4_0,
    gguf.GGMLQuantizationType.Q4_K: _q4_k,
}
