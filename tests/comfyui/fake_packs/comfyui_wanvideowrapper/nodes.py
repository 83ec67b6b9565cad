"""nodes.py-shaped (kijai/ComfyUI-WanVideoWrapper): the text encode, image
encode and decode nodes, with module globals `device` / `offload_device` set
at import as in the pack's node modules. Inputs and positional order follow
ComfyUI-MultiGPU 2.6.3's calls into these nodes (wanvideo.py), which pass
every argument; the text encoders' own `device` input is "gpu" | "cpu"."""
import comfy.model_management as mm

from .shape import BOOL, FLOAT, INT, TEXT, combo, node

device = mm.get_torch_device()
offload_device = mm.unet_offload_device()
M = __name__
ENCODE_OPTIONAL = [("force_offload", BOOL(True)), ("model_to_offload", ("WANVIDEOMODEL",)),
                   ("use_disk_cache", BOOL(False)), ("device", combo(["gpu", "cpu"]))]
TILES = [("enable_vae_tiling", BOOL(False)), ("tile_x", INT(272, 40, 2048, 8)), ("tile_y", INT(272, 40, 2048, 8)),
         ("tile_stride_x", INT(144, 32, 2040, 8)), ("tile_stride_y", INT(128, 32, 2040, 8))]


def _decode_validate(cls, tile_x, tile_y, tile_stride_x, tile_stride_y):
    if tile_x <= tile_stride_x:
        return "Tile width must be larger than the tile stride width."
    return True


Decode = node(M, "WanVideoDecode", [("vae", ("WANVAE",)), ("samples", ("LATENT",))] + TILES,
              [("normalization", combo(["default", "minmax"]))], ["IMAGE"], ["images"], "decode")
Decode.VALIDATE_INPUTS = classmethod(_decode_validate)

NODE_CLASS_MAPPINGS = {c.__name__: c for c in (
    node(M, "WanVideoTextEncode", [("positive_prompt", TEXT), ("negative_prompt", TEXT)],
         [("t5", ("WANTEXTENCODER",))] + ENCODE_OPTIONAL, ["WANVIDEOTEXTEMBEDS"], ["text_embeds"], "process"),
    node(M, "WanVideoTextEncodeSingle", [("prompt", TEXT)],
         [("t5", ("WANTEXTENCODER",))] + ENCODE_OPTIONAL, ["WANVIDEOTEXTEMBEDS"], ["text_embeds"], "process"),
    node(M, "WanVideoTextEncodeCached",
         [("model_name", combo(["umt5-xxl-enc-bf16.safetensors"])), ("precision", combo(["fp32", "bf16"], "bf16")),
          ("positive_prompt", TEXT), ("negative_prompt", TEXT),
          ("quantization", combo(["disabled", "fp8_e4m3fn"])), ("use_disk_cache", BOOL(True)),
          ("device", combo(["gpu", "cpu"]))],
         [("extender_args", ("WANVIDEOPROMPTEXTENDER_ARGS",))],
         ["WANVIDEOTEXTEMBEDS", "WANVIDEOTEXTEMBEDS", "STRING"],
         ["text_embeds", "negative_text_embeds", "positive_prompt"], "process"),
    node(M, "WanVideoImageToVideoEncode",
         [("width", INT(832, 64, 8096, 8)), ("height", INT(480, 64, 8096, 8)), ("num_frames", INT(81, 1, 10000, 4)),
          ("noise_aug_strength", FLOAT(0.0)), ("start_latent_strength", FLOAT(1.0)),
          ("end_latent_strength", FLOAT(1.0)), ("force_offload", BOOL(True))],
         [("vae", ("WANVAE",)), ("clip_embeds", ("WANVIDIMAGE_CLIPEMBEDS",)), ("start_image", ("IMAGE",)),
          ("end_image", ("IMAGE",)), ("control_embeds", ("WANVIDIMAGE_EMBEDS",)),
          ("fun_or_fl2v_model", BOOL(True)), ("temporal_mask", ("MASK",)), ("extra_latents", ("LATENT",)),
          ("tiled_vae", BOOL(False)), ("add_cond_latents", ("ADD_COND_LATENTS",))],
         ["WANVIDIMAGE_EMBEDS"], ["image_embeds"], "process"),
    Decode,
    node(M, "WanVideoEncode", [("vae", ("WANVAE",)), ("image", ("IMAGE",))] + TILES,
         [("noise_aug_strength", FLOAT(0.0)), ("latent_strength", FLOAT(1.0)), ("mask", ("MASK",))],
         ["LATENT"], ["samples"], "encode"),
    node(M, "WanVideoVACEEncode",
         [("vae", ("WANVAE",)), ("width", INT(832, 64, 8096, 8)), ("height", INT(480, 64, 8096, 8)),
          ("num_frames", INT(81, 1, 10000, 4)), ("strength", FLOAT(1.0)),
          ("vace_start_percent", FLOAT(0.0, 0.0, 1.0, 0.01)), ("vace_end_percent", FLOAT(1.0, 0.0, 1.0, 0.01))],
         [("input_frames", ("IMAGE",)), ("ref_images", ("IMAGE",)), ("input_masks", ("MASK",)),
          ("prev_vace_embeds", ("WANVIDIMAGE_EMBEDS",)), ("tiled_vae", BOOL(False))],
         ["WANVIDIMAGE_EMBEDS"], ["vace_embeds"], "process"),
    node(M, "WanVideoClipVisionEncode",
         [("clip_vision", ("CLIP_VISION",)), ("image_1", ("IMAGE",)), ("strength_1", FLOAT(1.0)),
          ("strength_2", FLOAT(1.0)), ("crop", combo(["center", "disabled"])),
          ("combine_embeds", combo(["average", "sum", "concat", "batch"])), ("force_offload", BOOL(True))],
         [("image_2", ("IMAGE",)), ("negative_image", ("IMAGE",)), ("tiles", INT(0, 0, 16, 2)),
          ("ratio", FLOAT(0.5, 0.0, 1.0, 0.01))],
         ["WANVIDIMAGE_CLIPEMBEDS"], ["image_embeds"], "process"),
)}
