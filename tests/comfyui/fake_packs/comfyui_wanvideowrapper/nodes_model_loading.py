"""nodes_model_loading.py-shaped (kijai/ComfyUI-WanVideoWrapper, the stored
version read on 2026-11-24 through the code index, file id 1192551483): the
module keeps `device = mm.get_torch_device()` and `offload_device =
mm.unet_offload_device()` from import time; the text encoder loaders take
`load_device` (main_device | offload_device) and load to `device if
load_device == "main_device" else offload_device`; WanVideoBlockSwap's
inputs and setargs(**kwargs) -> (kwargs,). The VAE loaders' inputs follow
ComfyUI-MultiGPU 2.6.3's calls into them (loadmodel(model_name, precision,
...))."""
import comfy.model_management as mm

from .shape import BOOL, INT, combo, node

device = mm.get_torch_device()
offload_device = mm.unet_offload_device()
M = __name__

NODE_CLASS_MAPPINGS = {c.__name__: c for c in (
    node(M, "WanVideoModelLoader",
         [("model", combo(["wan2.1_t2v_1.3B.safetensors"])),
          ("base_precision", combo(["fp32", "bf16", "fp16", "fp16_fast"], "bf16")),
          ("quantization", combo(["disabled", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"], "disabled")),
          ("load_device", combo(["main_device", "offload_device"], "offload_device"))],
         [("attention_mode", combo(["sdpa", "flash_attn_2", "sageattn"], "sdpa")),
          ("compile_args", ("WANCOMPILEARGS",)), ("block_swap_args", ("BLOCKSWAPARGS",)),
          ("lora", ("WANVIDLORA", {"default": None})),
          ("vram_management_args", ("VRAM_MANAGEMENTARGS", {"default": None})),
          ("extra_model", ("VACEPATH", {"default": None})), ("vace_model", ("VACEPATH", {"default": None})),
          ("fantasytalking_model", ("FANTASYTALKINGMODEL", {"default": None})),
          ("multitalk_model", ("MULTITALKMODEL", {"default": None})),
          ("fantasyportrait_model", ("FANTASYPORTRAITMODEL", {"default": None})),
          ("rms_norm_function", combo(["default", "pytorch"]))],
         ["WANVIDEOMODEL"], ["model"], "loadmodel"),
    node(M, "LoadWanVideoT5TextEncoder",
         [("model_name", combo(["umt5-xxl-enc-bf16.safetensors"])), ("precision", combo(["fp32", "bf16"], "bf16")),
          ("load_device", combo(["main_device", "offload_device"], "offload_device"))],
         [("quantization", combo(["disabled", "fp8_e4m3fn"]))],
         ["WANTEXTENCODER"], ["wan_t5_model"], "loadmodel"),
    node(M, "LoadWanVideoClipTextEncoder",
         [("model_name", combo(["open-clip-xlm-roberta-large-vit-huge-14.safetensors"])),
          ("precision", combo(["fp16", "fp32", "bf16"])),
          ("load_device", combo(["main_device", "offload_device"], "offload_device"))],
         [], ["CLIP_VISION"], ["wan_clip_vision"], "loadmodel"),
    node(M, "WanVideoVAELoader",
         [("model_name", combo(["wan_2.1_vae.safetensors"]))],
         [("precision", combo(["fp16", "fp32", "bf16"], "bf16")), ("compile_args", ("WANCOMPILEARGS",))],
         ["WANVAE"], ["vae"], "loadmodel"),
    node(M, "WanVideoTinyVAELoader",
         [("model_name", combo(["taew2_1.safetensors"]))],
         [("precision", combo(["fp16", "fp32", "bf16"])), ("parallel", BOOL(False))],
         ["WANVAE"], ["vae"], "loadmodel"),
    node(M, "WanVideoBlockSwap",
         [("blocks_to_swap", INT(20, 0, 40)), ("offload_img_emb", BOOL(False)), ("offload_txt_emb", BOOL(False))],
         [("use_non_blocking", BOOL(True)), ("vace_blocks_to_swap", INT(0, 0, 15))],
         ["BLOCKSWAPARGS"], ["block_swap_args"], "setargs", result=lambda kwargs: (dict(kwargs),)),
)}
