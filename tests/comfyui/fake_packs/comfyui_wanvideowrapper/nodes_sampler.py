"""nodes_sampler.py-shaped (kijai/ComfyUI-WanVideoWrapper): WanVideoSampler
with module globals `device` / `offload_device`; inputs as ComfyUI-MultiGPU
2.6.3 lists them for its twin (without its compute_device)."""
import comfy.model_management as mm

from .shape import BOOL, FLOAT, INT, combo, node

device = mm.get_torch_device()
offload_device = mm.unet_offload_device()
M = __name__

NODE_CLASS_MAPPINGS = {c.__name__: c for c in (
    node(M, "WanVideoSampler",
         [("model", ("WANVIDEOMODEL",)), ("image_embeds", ("WANVIDIMAGE_EMBEDS",)), ("steps", INT(30, 1)),
          ("cfg", FLOAT(6.0, 0.0, 30.0, 0.01)), ("shift", FLOAT(5.0, 0.0, 1000.0, 0.01)),
          ("seed", INT(0, 0, 0xffffffffffffffff)), ("force_offload", BOOL(True)),
          ("scheduler", combo(["unipc", "dpm++", "euler"])), ("riflex_freq_index", INT(0, 0, 1000))],
         [("text_embeds", ("WANVIDEOTEXTEMBEDS",)), ("samples", ("LATENT",)),
          ("denoise_strength", FLOAT(1.0, 0.0, 1.0, 0.01)), ("feta_args", ("FETAARGS",)),
          ("context_options", ("WANVIDCONTEXT",)), ("cache_args", ("CACHEARGS",)),
          ("flowedit_args", ("FLOWEDITARGS",)), ("batched_cfg", BOOL(False)), ("slg_args", ("SLGARGS",)),
          ("rope_function", combo(["default", "comfy", "comfy_chunked"], "comfy")), ("loop_args", ("LOOPARGS",)),
          ("experimental_args", ("EXPERIMENTALARGS",)), ("sigmas", ("SIGMAS",)),
          ("unianimate_poses", ("UNIANIMATE_POSE",)), ("fantasytalking_embeds", ("FANTASYTALKING_EMBEDS",)),
          ("uni3c_embeds", ("UNI3C_EMBEDS",)), ("multitalk_embeds", ("MULTITALK_EMBEDS",)),
          ("freeinit_args", ("FREEINITARGS",)), ("start_step", INT(0, 0, 10000)), ("end_step", INT(-1, -1, 10000)),
          ("add_noise_to_samples", BOOL(False))],
         ["LATENT", "LATENT"], ["samples", "denoised_samples"], "process"),
)}
