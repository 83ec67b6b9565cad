"""Cast-at-forward layers shaped like ComfyUI's comfy.ops."""
import torch

import comfy.memory_management
import comfy.model_management


def cast_bias_weight(s, input=None, dtype=None, device=None, bias_dtype=None):
    if input is not None:
        dtype = dtype or input.dtype
        bias_dtype = bias_dtype or dtype
        device = device or input.device
    has_wf = len(s.weight_function) > 0
    weight = comfy.model_management.cast_to(s.weight, None, device, copy=has_wf)
    bias = None
    if s.bias is not None:
        bias = comfy.model_management.cast_to(s.bias, bias_dtype, device, copy=len(s.bias_function) > 0)
        for f in s.bias_function:
            bias = f(bias)
    if has_wf or weight.dtype != dtype:
        weight = weight.to(dtype=dtype)
        for f in s.weight_function:
            weight = f(weight)
    comfy.model_management.CAST_COUNT[0] += 1
    return weight, bias


class CastWeightBiasOp:
    comfy_cast_weights = False
    weight_function = []
    bias_function = []


class disable_weight_init:
    # ComfyUI 0.33.0 comfy/ops.py disable_weight_init._lazy_load_from_state_dict:
    # with DynamicVRAM on, Linear loads here instead of through
    # Module._load_from_state_dict; each tensor is cloned unless load_state_dict
    # was called with assign=True. (0.33.0 walks every key of the state dict
    # it gets, which torch 2.x narrows to this module; torch 1.13 passes the
    # whole dict, so the fake keeps to `prefix`.)
    @staticmethod
    def _lazy_load_from_state_dict(module, state_dict, prefix, local_metadata,
                                   missing_keys, unexpected_keys, weight_shape,
                                   bias_shape=None):
        assign_to_params_buffers = local_metadata.get("assign_to_params_buffers", False)
        prefix_len = len(prefix)
        for k, v in state_dict.items():
            if not k.startswith(prefix):
                continue
            key = k[prefix_len:]
            if key == "weight":
                if not assign_to_params_buffers:
                    v = v.clone()
                module.weight = torch.nn.Parameter(v, requires_grad=False)
            elif bias_shape is not None and key == "bias" and v is not None:
                if not assign_to_params_buffers:
                    v = v.clone()
                module.bias = torch.nn.Parameter(v, requires_grad=False)
            elif "." not in key:
                unexpected_keys.append(k)
        if module.weight is None:
            module.weight = torch.nn.Parameter(torch.zeros(weight_shape), requires_grad=False)
            missing_keys.append(prefix + "weight")
        if bias_shape is not None and module.bias is None and getattr(module, "comfy_need_lazy_init_bias", False):
            module.bias = torch.nn.Parameter(torch.zeros(bias_shape), requires_grad=False)
            missing_keys.append(prefix + "bias")

    class Linear(torch.nn.Linear, CastWeightBiasOp):
        # 0.33.0: with aimdo on (and a subclass that does not bring its own
        # loader) the layer starts without weights and loads lazily.
        def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
            if (not comfy.memory_management.aimdo_enabled
                    or type(self)._load_from_state_dict is not disable_weight_init.Linear._load_from_state_dict):
                super().__init__(in_features, out_features, bias, device, dtype)
                return
            torch.nn.Module.__init__(self)
            self.in_features = in_features
            self.out_features = out_features
            self.weight = None
            self.bias = None
            self.comfy_need_lazy_init_bias = bias
            self.weight_comfy_model_dtype = dtype
            self.bias_comfy_model_dtype = dtype

        def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                                  strict, missing_keys, unexpected_keys, error_msgs):
            if (not comfy.memory_management.aimdo_enabled
                    or type(self)._load_from_state_dict is not disable_weight_init.Linear._load_from_state_dict):
                return super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                                     missing_keys, unexpected_keys, error_msgs)
            disable_weight_init._lazy_load_from_state_dict(
                self, state_dict, prefix, local_metadata, missing_keys, unexpected_keys,
                weight_shape=(self.in_features, self.out_features), bias_shape=(self.out_features,))

        def reset_parameters(self):
            return None

        def forward(self, input):
            if self.comfy_cast_weights or len(self.weight_function) > 0 or len(self.bias_function) > 0:
                weight, bias = cast_bias_weight(self, input)
                return torch.nn.functional.linear(input, weight, bias)
            return super().forward(input)

    class Conv2d(torch.nn.Conv2d, CastWeightBiasOp):
        def reset_parameters(self):
            return None

        def forward(self, input):
            if self.comfy_cast_weights or len(self.weight_function) > 0 or len(self.bias_function) > 0:
                weight, bias = cast_bias_weight(self, input)
                return self._conv_forward(input, weight, bias)
            return super().forward(input)


class manual_cast(disable_weight_init):
    class Linear(disable_weight_init.Linear):
        comfy_cast_weights = True

    class Conv2d(disable_weight_init.Conv2d):
        comfy_cast_weights = True
