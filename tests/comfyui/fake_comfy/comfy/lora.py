"""calculate_weight for two patch kinds: ("diff", (tensor,)) and
("lora", (up, down, alpha)). In place on `weight`, like ComfyUI."""
import torch


def calculate_weight(patches, weight, key, intermediate_dtype=torch.float32, original_weights=None):
    for strength, value, strength_model, offset, function in patches:
        if strength_model != 1.0:
            weight *= strength_model
        kind, data = value
        if kind == "diff":
            weight += strength * data[0].to(weight.device, weight.dtype)
        elif kind == "lora":
            up, down, alpha = data
            delta = torch.mm(up.to(weight.device, torch.float32), down.to(weight.device, torch.float32))
            scale = (alpha / down.shape[0]) if alpha is not None else 1.0
            weight += (strength * scale * delta).reshape(weight.shape).to(weight.dtype)
    return weight
