"""GGMLTensor and the dequantise-at-forward layers, shaped like ComfyUI-GGUF's
ops.py (city96/ComfyUI-GGUF 795e451, 2025-12-18): a GGMLTensor is a
torch.Tensor subclass over the tensor's storage whose `.shape` answers the
logical `tensor_shape`; GGMLLayer modules take such tensors as their
parameters as they are (no copy) and dequantise them at each forward.

One difference: the fake ComfyUI's comfy.ops layers have no
forward_comfy_cast_weights hook, so GGMLLayer.forward dispatches itself."""
import torch

import comfy.ops

from .dequant import dequantize_tensor, is_quantized


class GGMLTensor(torch.Tensor):
    def __init__(self, *args, tensor_type, tensor_shape, patches=[], **kwargs):
        super().__init__()
        self.tensor_type = tensor_type
        self.tensor_shape = tensor_shape
        self.patches = patches

    def __new__(cls, *args, tensor_type, tensor_shape, patches=[], **kwargs):
        return super().__new__(cls, *args, **kwargs)

    def to(self, *args, **kwargs):
        new = super().to(*args, **kwargs)
        new.tensor_type = getattr(self, "tensor_type", None)
        new.tensor_shape = getattr(self, "tensor_shape", new.data.shape)
        new.patches = getattr(self, "patches", []).copy()
        return new

    def clone(self, *args, **kwargs):
        return self

    def detach(self, *args, **kwargs):
        return self

    @property
    def shape(self):
        if not hasattr(self, "tensor_shape"):
            self.tensor_shape = self.size()
        return self.tensor_shape


class GGMLLayer(torch.nn.Module):
    comfy_cast_weights = True
    dequant_dtype = None
    patch_dtype = None
    largest_layer = False

    def is_ggml_quantized(self, *, weight=None, bias=None):
        if weight is None:
            weight = self.weight
        if bias is None:
            bias = self.bias
        return is_quantized(weight) or is_quantized(bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        weight, bias = state_dict.get(f"{prefix}weight"), state_dict.get(f"{prefix}bias")
        if self.is_ggml_quantized(weight=weight, bias=bias) or isinstance(self, torch.nn.Linear):
            return self.ggml_load_from_state_dict(state_dict, prefix, *args, **kwargs)
        return super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def ggml_load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                                  unexpected_keys, error_msgs):
        prefix_len = len(prefix)
        for k, v in state_dict.items():
            if k[prefix_len:] == "weight":
                self.weight = torch.nn.Parameter(v, requires_grad=False)
            elif k[prefix_len:] == "bias" and v is not None:
                self.bias = torch.nn.Parameter(v, requires_grad=False)
            elif k.startswith(prefix):
                unexpected_keys.append(k)
        if getattr(self.weight, "is_largest_weight", False):
            self.largest_layer = True

    def get_weight(self, tensor, dtype):
        if tensor is None:
            return None
        weight = dequantize_tensor(tensor, dtype, self.dequant_dtype)
        if isinstance(weight, GGMLTensor):  # do not propagate the subclass
            weight = torch.Tensor(weight)
        return weight

    def cast_bias_weight(self, input):
        dtype, device = input.dtype, input.device
        bias = None
        if self.bias is not None:
            bias = self.get_weight(self.bias.to(device), dtype)
        weight = self.get_weight(self.weight.to(device), dtype)
        return weight, bias

    def forward(self, input):
        if self.is_ggml_quantized():
            out = self.forward_ggml_cast_weights(input)
        else:
            out = super().forward(input)
        if isinstance(out, GGMLTensor):
            out = torch.Tensor(out)
        return out


class GGMLOps(comfy.ops.manual_cast):
    class Linear(GGMLLayer, comfy.ops.manual_cast.Linear):
        def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
            torch.nn.Module.__init__(self)
            self.in_features = in_features
            self.out_features = out_features
            self.weight = None
            self.bias = None

        def forward_ggml_cast_weights(self, input):
            weight, bias = self.cast_bias_weight(input)
            return torch.nn.functional.linear(input, weight, bias)

    class Conv2d(GGMLLayer, comfy.ops.manual_cast.Conv2d):
        def forward_ggml_cast_weights(self, input):
            weight, bias = self.cast_bias_weight(input)
            return self._conv_forward(input, weight, bias)
