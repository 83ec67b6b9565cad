"""gguf_sd_loader, shaped like ComfyUI-GGUF's loader.py (city96/ComfyUI-GGUF
795e451, 2025-12-18): the state dict maps each tensor name (the
"model.diffusion_model." prefix stripped when the file has it) to a GGMLTensor
over the file's memmap: F32/F16 viewed in the logical shape, everything else
uint8 in gguf-py's byte shape; the largest quantised tensor is marked
`is_largest_weight`. No llama.cpp/sd.cpp compatibility paths."""
import logging
import warnings

import torch

import gguf

from .dequant import dequantize_tensor, is_quantized
from .ops import GGMLTensor

IMG_ARCH_LIST = {"flux", "sd1", "sdxl", "sd3", "aura", "hidream", "cosmos", "ltxv", "hyvid", "wan",
                 "lumina2", "qwen_image"}


def _string_field(reader, key):
    field = reader.get_field(key)
    if field is None:
        return None
    return str(bytes(field.parts[field.data[-1]]), encoding="utf-8")


def gguf_sd_loader(path, handle_prefix="model.diffusion_model.", return_arch=False,
                   is_text_model=False):
    reader = gguf.GGUFReader(path)
    has_prefix = False
    if handle_prefix is not None:
        has_prefix = any(t.name.startswith(handle_prefix) for t in reader.tensors)
    tensors = []
    for tensor in reader.tensors:
        sd_key = tensor.name
        if has_prefix:
            if not sd_key.startswith(handle_prefix):
                continue
            sd_key = sd_key[len(handle_prefix):]
        tensors.append((sd_key, tensor))

    arch_str = _string_field(reader, "general.architecture")
    if not is_text_model and arch_str not in IMG_ARCH_LIST:
        raise ValueError(f"Unexpected architecture type in GGUF file: {arch_str!r}")

    state_dict, qtypes = {}, {}
    for sd_key, tensor in tensors:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            torch_tensor = torch.from_numpy(tensor.data)  # the file's memmap
        shape = torch.Size(tuple(int(v) for v in reversed(tensor.shape)))
        if tensor.tensor_type in {gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16}:
            torch_tensor = torch_tensor.view(*shape)
        state_dict[sd_key] = GGMLTensor(torch_tensor, tensor_type=tensor.tensor_type,
                                        tensor_shape=shape)
        if len(shape) <= 1 and tensor.tensor_type == gguf.GGMLQuantizationType.BF16:
            state_dict[sd_key] = dequantize_tensor(state_dict[sd_key], dtype=torch.float32)
        name = getattr(tensor.tensor_type, "name", repr(tensor.tensor_type))
        qtypes[name] = qtypes.get(name, 0) + 1
    logging.info("gguf qtypes: " + ", ".join(f"{k} ({v})" for k, v in qtypes.items()))

    qsd = {k: v for k, v in state_dict.items() if is_quantized(v)}
    if qsd:
        state_dict[max(qsd, key=lambda k: qsd[k].numel())].is_largest_weight = True
    return (state_dict, arch_str) if return_arch else state_dict
