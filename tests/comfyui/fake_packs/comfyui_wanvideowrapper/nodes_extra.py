"""The loaders WanVideoWrapper keeps in its optional modules (controlnet/,
fantasytalking/, multitalk/, uni3c/ nodes.py), each with module globals
`device` / `offload_device`; inputs as ComfyUI-MultiGPU 2.6.3 calls them."""
import comfy.model_management as mm

from .shape import LOAD_DEVICE, combo, node

device = mm.get_torch_device()
offload_device = mm.unet_offload_device()
M = __name__
PRECISION = combo(["fp32", "bf16", "fp16"], "fp16")

NODE_CLASS_MAPPINGS = {c.__name__: c for c in (
    node(M, "WanVideoControlnetLoader",
         [("model", combo(["wan_controlnet.safetensors"])), ("base_precision", combo(["fp32", "bf16", "fp16"], "bf16")),
          ("quantization", combo(["disabled", "fp8_e4m3fn"])), ("load_device", LOAD_DEVICE)],
         [], ["WANVIDEOCONTROLNET"], ["controlnet"], "loadmodel"),
    node(M, "FantasyTalkingModelLoader",
         [("model", combo(["fantasytalking.safetensors"])), ("base_precision", PRECISION)],
         [], ["FANTASYTALKINGMODEL"], ["model"], "loadmodel"),
    node(M, "Wav2VecModelLoader",
         [("model", combo(["wav2vec2.safetensors"])), ("base_precision", PRECISION), ("load_device", LOAD_DEVICE)],
         [], ["WAV2VECMODEL"], ["wav2vec_model"], "loadmodel"),
    node(M, "DownloadAndLoadWav2VecModel",
         [("model", combo(["TencentGameMate/chinese-wav2vec2-base", "facebook/wav2vec2-base-960h"])),
          ("base_precision", PRECISION), ("load_device", LOAD_DEVICE)],
         [], ["WAV2VECMODEL"], ["wav2vec_model"], "loadmodel"),
    node(M, "WanVideoUni3C_ControlnetLoader",
         [("model", combo(["uni3c.safetensors"])), ("base_precision", PRECISION),
          ("quantization", combo(["disabled", "fp8_e4m3fn", "fp8_e5m2"])), ("load_device", LOAD_DEVICE),
          ("attention_mode", combo(["sdpa", "sageattn"]))],
         [("compile_args", ("WANCOMPILEARGS",))], ["WANVIDEOCONTROLNET"], ["controlnet"], "loadmodel"),
)}
