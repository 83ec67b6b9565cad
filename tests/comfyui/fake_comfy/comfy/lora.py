"""calculate_weight for two patch kinds: ("diff", (tensor,)) and
("lora", (up, down, alpha)). In place on `weight`, like ComfyUI. load_lora and
the key maps read this fake's LoRA files: '<weight key>.lora_up' / '.lora_down'
(ComfyUI 0.33.0 comfy/lora.py: load_lora(lora, to_load, log_missing),
model_lora_keys_clip/unet(model, key_map) -> {file key prefix: model key})."""
import torch


def model_lora_keys_unet(model, key_map={}):
    for k in model.state_dict():
        if k.endswith(".weight"):
            key_map[k] = k
    return key_map


def model_lora_keys_clip(model, key_map={}):
    return model_lora_keys_unet(model, key_map)


def load_lora(lora, to_load, log_missing=True):
    patch_dict = {}
    for prefix, key in to_load.items():
        up, down = lora.get(prefix + ".lora_up"), lora.get(prefix + ".lora_down")
        if up is not None and down is not None:
            patch_dict[key] = ("lora", (up, down, None))
    return patch_dict


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
