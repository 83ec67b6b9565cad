"""Writes model files a real ComfyUI recognises, with ComfyUI's own module
classes built on the meta device (shapes only) and zero-filled data:
  diffusion_models/tiny_sd15_unet.safetensors  an SD1.x UNet (model_channels 320,
      context 768) with one level, so ComfyUI detects it as SD1.5 at ~1/50 size
  text_encoders/clip_l.safetensors            CLIP-L text encoder (fp16)
Run with ComfyUI's interpreter from the ComfyUI directory."""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.getcwd())
from make_model import write_safetensors  # noqa: E402

out = sys.argv[1]
sys.argv = [sys.argv[0]] + ([] if torch.cuda.is_available() else ["--cpu"])  # comfy parses argv
os.makedirs(os.path.join(out, "diffusion_models"), exist_ok=True)
os.makedirs(os.path.join(out, "text_encoders"), exist_ok=True)

import comfy.options  # noqa: E402
comfy.options.enable_args_parsing()
import comfy.ops  # noqa: E402
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel  # noqa: E402
import comfy.sd1_clip  # noqa: E402


def arrays(module, dtype):
    return {k: np.zeros(tuple(v.shape), dtype=dtype) for k, v in module.state_dict().items()}


unet = UNetModel(image_size=32, in_channels=4, model_channels=320, out_channels=4,
                 num_res_blocks=[1], channel_mult=[1], transformer_depth=[1],
                 transformer_depth_output=[1, 1], transformer_depth_middle=1, context_dim=768,
                 num_head_channels=64, use_linear_in_transformer=False, use_spatial_transformer=True,
                 device="meta", operations=comfy.ops.disable_weight_init)
sd = {"model.diffusion_model." + k: v for k, v in arrays(unet, np.float32).items()}
write_safetensors(os.path.join(out, "diffusion_models", "tiny_sd15_unet.safetensors"), sd)

te = comfy.sd1_clip.SDClipModel(device="meta", dtype=torch.float16)
write_safetensors(os.path.join(out, "text_encoders", "clip_l.safetensors"),
                  {k[len("transformer."):]: v for k, v in arrays(te, np.float16).items()
                   if k.startswith("transformer.")})
print("models written to", out)
