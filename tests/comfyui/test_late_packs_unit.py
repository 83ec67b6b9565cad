"""Packs that ComfyUI imports after distorch, and ComfyUI-WanVideoWrapper's
MultiGPU names.

Each test starts the fake ComfyUI 0.33's custom-node loading
(`nodes.init_external_custom_nodes`, shaped like 0.33.0 nodes.py) over a
custom_nodes folder holding distorch and the packs, with `os.listdir` giving
the order ComfyUI would meet them in (0.33 does not sort them).
"""

import asyncio
import os
import sys

import pytest
import torch

import comfy.model_management as mm
import folder_paths
import nodes
import server
from execution import PromptExecutor, validate_inputs

HERE = os.path.dirname(os.path.abspath(__file__))
PACKS = {"ComfyUI-GGUF": os.path.join(HERE, "fake_gguf", "comfyui_gguf"),
         "ComfyUI-Florence2": os.path.join(HERE, "fake_packs", "comfyui_florence2"),
         "ComfyUI-WanVideoWrapper": os.path.join(HERE, "fake_packs", "comfyui_wanvideowrapper")}
DIFFUSERS_STUB = os.path.join(HERE, "fake_packs", "diffusers_stub")

GGUF_BASES = ["UnetLoaderGGUF", "UnetLoaderGGUFAdvanced"]  # what the ComfyUI-GGUF stand-in has
GGUF_MULTIGPU = [b + s for b in GGUF_BASES for s in ("MultiGPU", "DisTorchMultiGPU", "DisTorch2MultiGPU")]
GGUF_TWINS = ["Distorch" + b for b in GGUF_BASES]
FLORENCE2 = ["Florence2ModelLoaderMultiGPU", "DownloadAndLoadFlorence2ModelMultiGPU"]

# ComfyUI-MultiGPU 2.6.3 wanvideo.py: each name's inputs (required, optional)
# in order, and its outputs.
WAN = {
    "WanVideoModelLoaderMultiGPU": (
        ["model", "base_precision", "quantization", "load_device", "compute_device"],
        ["attention_mode", "compile_args", "block_swap_args", "lora", "vram_management_args", "extra_model",
         "vace_model", "fantasytalking_model", "multitalk_model", "fantasyportrait_model", "rms_norm_function"],
        ("WANVIDEOMODEL", "MULTIGPUDEVICE"), ("model", "compute_device")),
    "WanVideoSamplerMultiGPU": (
        ["model", "compute_device", "image_embeds", "steps", "cfg", "shift", "seed", "force_offload",
         "scheduler", "riflex_freq_index"],
        ["text_embeds", "samples", "denoise_strength", "feta_args", "context_options", "cache_args",
         "flowedit_args", "batched_cfg", "slg_args", "rope_function", "loop_args", "experimental_args",
         "sigmas", "unianimate_poses", "fantasytalking_embeds", "uni3c_embeds", "multitalk_embeds",
         "freeinit_args", "start_step", "end_step", "add_noise_to_samples"],
        ("LATENT", "LATENT"), ("samples", "denoised_samples")),
    "WanVideoTextEncodeMultiGPU": (
        ["positive_prompt", "negative_prompt"],
        ["t5", "load_device", "force_offload", "model_to_offload", "use_disk_cache"],
        ("WANVIDEOTEXTEMBEDS",), ("text_embeds",)),
    "LoadWanVideoT5TextEncoderMultiGPU": (
        ["model_name", "precision"], ["device", "quantization"],
        ("WANTEXTENCODER", "MULTIGPUDEVICE"), ("wan_t5_model", "load_device")),
    "LoadWanVideoClipTextEncoderMultiGPU": (
        ["model_name", "precision"], ["device"],
        ("CLIP_VISION", "MULTIGPUDEVICE"), ("wan_clip_vision", "load_device")),
    "WanVideoTextEncodeCachedMultiGPU": (
        ["model_name", "precision", "positive_prompt", "negative_prompt", "quantization", "use_disk_cache",
         "load_device"],
        ["extender_args"],
        ("WANVIDEOTEXTEMBEDS", "WANVIDEOTEXTEMBEDS", "STRING"),
        ("text_embeds", "negative_text_embeds", "positive_prompt")),
    "WanVideoTextEncodeSingleMultiGPU": (
        ["prompt"], ["t5", "load_device", "force_offload", "model_to_offload", "use_disk_cache"],
        ("WANVIDEOTEXTEMBEDS",), ("text_embeds",)),
    "WanVideoVAELoaderMultiGPU": (
        ["model_name"], ["load_device", "precision", "compile_args"],
        ("WANVAE", "MULTIGPUDEVICE"), ("vae", "load_device")),
    "WanVideoTinyVAELoaderMultiGPU": (
        ["model_name"], ["load_device", "precision", "parallel"],
        ("WANVAE", "MULTIGPUDEVICE"), ("vae", "load_device")),
    "WanVideoBlockSwapMultiGPU": (
        ["blocks_to_swap", "offload_img_emb", "offload_txt_emb"],
        ["use_non_blocking", "vace_blocks_to_swap", "swap_device"],
        ("BLOCKSWAPARGS",), ("block_swap_args",)),
    "WanVideoImageToVideoEncodeMultiGPU": (
        ["width", "height", "num_frames", "noise_aug_strength", "start_latent_strength", "end_latent_strength",
         "force_offload"],
        ["vae", "load_device", "clip_embeds", "start_image", "end_image", "control_embeds", "fun_or_fl2v_model",
         "temporal_mask", "extra_latents", "tiled_vae", "add_cond_latents"],
        ("WANVIDIMAGE_EMBEDS",), ("image_embeds",)),
    "WanVideoDecodeMultiGPU": (
        ["vae", "load_device", "samples", "enable_vae_tiling", "tile_x", "tile_y", "tile_stride_x",
         "tile_stride_y"],
        ["normalization"], ("IMAGE",), ("images",)),
    "WanVideoVACEEncodeMultiGPU": (
        ["vae", "load_device", "width", "height", "num_frames", "strength", "vace_start_percent",
         "vace_end_percent"],
        ["input_frames", "ref_images", "input_masks", "prev_vace_embeds", "tiled_vae"],
        ("WANVIDIMAGE_EMBEDS",), ("vace_embeds",)),
    "WanVideoEncodeMultiGPU": (
        ["vae", "load_device", "image", "enable_vae_tiling", "tile_x", "tile_y", "tile_stride_x",
         "tile_stride_y"],
        ["noise_aug_strength", "latent_strength", "mask"], ("LATENT",), ("samples",)),
    "WanVideoClipVisionEncodeMultiGPU": (
        ["clip_vision", "load_device", "image_1", "strength_1", "strength_2", "crop", "combine_embeds",
         "force_offload"],
        ["image_2", "negative_image", "tiles", "ratio"], ("WANVIDIMAGE_CLIPEMBEDS",), ("image_embeds",)),
    "WanVideoControlnetLoaderMultiGPU": (
        ["model", "base_precision", "quantization", "load_device", "device"], [],
        ("WANVIDEOCONTROLNET",), ("controlnet",)),
    "FantasyTalkingModelLoaderMultiGPU": (
        ["model", "base_precision", "device"], [], ("FANTASYTALKINGMODEL",), ("model",)),
    "Wav2VecModelLoaderMultiGPU": (
        ["model", "base_precision", "load_device", "device"], [], ("WAV2VECMODEL",), ("wav2vec_model",)),
    "WanVideoUni3C_ControlnetLoaderMultiGPU": (
        ["model", "base_precision", "quantization", "load_device", "device", "attention_mode"],
        ["compile_args"], ("WANVIDEOCONTROLNET",), ("controlnet",)),
    "DownloadAndLoadWav2VecModelMultiGPU": (
        ["model", "base_precision", "load_device", "device"], [], ("WAV2VECMODEL",), ("wav2vec_model",)),
}
DEVICE_COMBOS = {  # name -> (input, default): a combo of cpu + the devices, accelerator first else cpu
    "WanVideoModelLoaderMultiGPU": ("compute_device", "accelerator"),
    "LoadWanVideoT5TextEncoderMultiGPU": ("device", "accelerator"),
    "LoadWanVideoClipTextEncoderMultiGPU": ("device", "accelerator"),
    "WanVideoTextEncodeCachedMultiGPU": ("load_device", "accelerator"),
    "WanVideoVAELoaderMultiGPU": ("load_device", "accelerator"),
    "WanVideoTinyVAELoaderMultiGPU": ("load_device", "accelerator"),
    "WanVideoBlockSwapMultiGPU": ("swap_device", "cpu"),
    "WanVideoControlnetLoaderMultiGPU": ("device", "accelerator"),
    "FantasyTalkingModelLoaderMultiGPU": ("device", "accelerator"),
    "Wav2VecModelLoaderMultiGPU": ("device", "accelerator"),
    "WanVideoUni3C_ControlnetLoaderMultiGPU": ("device", "accelerator"),
    "DownloadAndLoadWav2VecModelMultiGPU": ("device", "accelerator"),
}
DISTORCH_SHIM = ("from distorch.comfy import setup\n"
                 "NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = setup()\n")


class Started:
    def __init__(self, root, distorch_module):
        self.root = root
        self.distorch_module = distorch_module

    def wan_module(self, short):
        """The WanVideoWrapper node module as ComfyUI imported it."""
        key = os.path.join(self.root, "ComfyUI-WanVideoWrapper").replace(".", "_x_") + "." + short
        return sys.modules[key]


@pytest.fixture
def start_comfy(tmp_path, monkeypatch):
    """start(order, packs, wan_importable): ComfyUI's custom-node loading over
    a custom_nodes folder with `distorch` and the named packs, met in `order`."""
    import distorch.comfy as dc
    from distorch.comfy import registry, session
    from stub_client import StubClient
    import gguf_fixture  # noqa: F401  (the `gguf` stand-in on sys.path)

    dc.teardown()
    monkeypatch.setattr(nodes, "NODE_CLASS_MAPPINGS", dict(nodes.NODE_CLASS_MAPPINGS))
    monkeypatch.setattr(nodes, "NODE_DISPLAY_NAME_MAPPINGS", dict(nodes.NODE_DISPLAY_NAME_MAPPINGS))
    monkeypatch.setattr(folder_paths, "MODELS_DIR", str(tmp_path))
    client = StubClient()
    client.device_names = ["cuda:1", "sim:0", "cpu"]  # device-only nodes offer cpu, cuda:1
    session.set_client_factory(lambda: client)
    registry.REGISTRY.__init__()
    root = str(tmp_path / "custom_nodes")
    os.makedirs(os.path.join(root, "distorch"))
    with open(os.path.join(root, "distorch", "__init__.py"), "w") as f:
        f.write(DISTORCH_SHIM)
    real_listdir = os.listdir
    order = []

    def listdir(path):
        names = real_listdir(path)
        if os.path.realpath(path) == os.path.realpath(root):
            return [n for n in order if n in names] + [n for n in names if n not in order]
        return names
    monkeypatch.setattr(os, "listdir", listdir)

    def start(met, packs=tuple(PACKS), wan_importable=True, extra_dirs=()):
        for pack in packs:
            os.symlink(PACKS[pack], os.path.join(root, pack))
        for d in extra_dirs:
            os.makedirs(os.path.join(root, d))
        if wan_importable:
            monkeypatch.syspath_prepend(DIFFUSERS_STUB)
        else:
            monkeypatch.setitem(sys.modules, "diffusers", None)  # `import diffusers` fails
        order[:] = met
        asyncio.run(nodes.init_external_custom_nodes())
        return Started(root, sys.modules[os.path.join(root, "distorch")])

    yield start
    dc.teardown()
    session.set_client_factory(None)
    registry.REGISTRY.__init__()
    mm.current_loaded_models.clear()


DISTORCH_FIRST = ["distorch", "ComfyUI-GGUF", "ComfyUI-Florence2", "ComfyUI-WanVideoWrapper"]
DISTORCH_LAST = ["ComfyUI-WanVideoWrapper", "ComfyUI-Florence2", "ComfyUI-GGUF", "distorch"]


@pytest.mark.parametrize("met", [DISTORCH_FIRST, DISTORCH_LAST], ids=["distorch_first", "distorch_last"])
def test_pack_names_register_in_either_import_order(start_comfy, met, caplog):
    caplog.set_level("INFO")
    started = start_comfy(met)
    info = server.object_info()
    for name in GGUF_MULTIGPU + GGUF_TWINS + FLORENCE2 + list(WAN):
        assert name in info, name
        assert info[name]["python_module"] == "custom_nodes.distorch"
        assert name in started.distorch_module.NODE_CLASS_MAPPINGS
    assert len(GGUF_MULTIGPU) == 6 and len(WAN) == 20  # 18 GGUF names with all six GGUF loaders
    assert {n for n in GGUF_TWINS if nodes.NODE_DISPLAY_NAME_MAPPINGS.get(n, "").endswith("(distorch)")} \
        == set(GGUF_TWINS)
    gguf_nodes = sys.modules[os.path.join(started.root, "ComfyUI-GGUF").replace(".", "_x_") + ".nodes"]
    assert getattr(gguf_nodes.gguf_sd_loader, "__distorch_patch__", False)
    late = [r.getMessage() for r in caplog.records if "loaded after distorch" in r.getMessage()]
    if met is DISTORCH_FIRST:
        assert [m.split(";")[0] for m in late] == [
            "distorch: ComfyUI-GGUF loaded after distorch", "distorch: ComfyUI-Florence2 loaded after distorch",
            "distorch: ComfyUI-WanVideoWrapper loaded after distorch"]
        assert "8 more node names registered" in late[0]  # 2 twins + 6 MultiGPU names
    else:
        assert late == []


def test_teardown_takes_out_the_late_names_and_the_hook(start_comfy):
    import distorch.comfy as dc
    stock_loader = nodes.load_custom_node
    start_comfy(DISTORCH_FIRST)
    assert "UnetLoaderGGUFDisTorch2MultiGPU" in nodes.NODE_CLASS_MAPPINGS
    dc.teardown()
    late = GGUF_MULTIGPU + GGUF_TWINS + FLORENCE2 + list(WAN)
    assert not set(late) & set(nodes.NODE_CLASS_MAPPINGS)
    assert not set(GGUF_TWINS) & set(nodes.NODE_DISPLAY_NAME_MAPPINGS)
    assert nodes.load_custom_node is stock_loader
    assert "UNETLoaderDisTorch2MultiGPU" in nodes.NODE_CLASS_MAPPINGS  # registered by ComfyUI itself


@pytest.mark.parametrize("met", [DISTORCH_FIRST, DISTORCH_LAST], ids=["distorch_first", "distorch_last"])
def test_wanvideo_names_need_an_importable_wanvideowrapper(start_comfy, met):
    start_comfy(met, wan_importable=False)
    assert "WanVideoSampler" not in nodes.NODE_CLASS_MAPPINGS  # the pack failed to import
    assert not set(WAN) & set(nodes.NODE_CLASS_MAPPINGS)
    assert set(GGUF_MULTIGPU + FLORENCE2) <= set(nodes.NODE_CLASS_MAPPINGS)


@pytest.mark.parametrize("met", [DISTORCH_FIRST, DISTORCH_LAST], ids=["distorch_first", "distorch_last"])
def test_no_multigpu_names_while_multigpu_is_installed(start_comfy, met):
    start_comfy(met + ["ComfyUI-MultiGPU"], extra_dirs=["ComfyUI-MultiGPU"])
    assert not set(GGUF_MULTIGPU + FLORENCE2 + list(WAN)) & set(nodes.NODE_CLASS_MAPPINGS)
    assert set(GGUF_TWINS) <= set(nodes.NODE_CLASS_MAPPINGS)  # distorch's own names stay


@pytest.mark.parametrize("met", [DISTORCH_FIRST, DISTORCH_LAST], ids=["distorch_first", "distorch_last"])
def test_wanvideo_inputs_outputs_and_defaults_are_multigpus(start_comfy, met):
    start_comfy(met)
    info = server.object_info()
    for name, (required, optional, outputs, output_names) in WAN.items():
        got = info[name]
        assert list(got["input"]["required"]) == required, name
        assert list(got["input"].get("optional", {})) == optional, name
        assert tuple(got["output"]) == outputs and tuple(got["output_name"]) == output_names, name
        assert got["category"] == "multigpu/WanVideoWrapper"
    for name, (input_name, default) in DEVICE_COMBOS.items():
        sections = info[name]["input"]
        choices, opts = {**sections["required"], **sections.get("optional", {})}[input_name]
        assert choices[0] == "cpu" and len(choices) > 1, name
        assert opts["default"] == ("cpu" if default == "cpu" else choices[1]), name
    # the pack's own choices and defaults come through
    steps = info["WanVideoSamplerMultiGPU"]["input"]["required"]["steps"]
    assert steps == ("INT", {"default": 30, "min": 1, "max": 10000, "step": 1})
    assert info["WanVideoSamplerMultiGPU"]["input"]["required"]["compute_device"] == ("MULTIGPUDEVICE",)


def _wan_prompt():
    """A MultiGPU WanVideo workflow in API format: T5 on cpu, text encode on
    its device, model and VAE on the accelerator, block swap to cpu, sample,
    decode."""
    return {
        "1": {"class_type": "LoadWanVideoT5TextEncoderMultiGPU",
              "inputs": {"model_name": "umt5-xxl-enc-bf16.safetensors", "precision": "bf16", "device": "cpu"}},
        "2": {"class_type": "WanVideoTextEncodeMultiGPU",
              "inputs": {"positive_prompt": "a cat", "negative_prompt": "", "t5": ["1", 0],
                         "load_device": ["1", 1]}},
        "3": {"class_type": "WanVideoBlockSwapMultiGPU",
              "inputs": {"blocks_to_swap": 10, "offload_img_emb": False, "offload_txt_emb": False,
                         "swap_device": "cpu"}},
        "4": {"class_type": "WanVideoModelLoaderMultiGPU",
              "inputs": {"model": "wan2.1_t2v_1.3B.safetensors", "base_precision": "bf16",
                         "quantization": "disabled", "load_device": "offload_device", "compute_device": "cuda:1",
                         "block_swap_args": ["3", 0]}},
        "5": {"class_type": "WanVideoVAELoaderMultiGPU",
              "inputs": {"model_name": "wan_2.1_vae.safetensors", "load_device": "cpu"}},
    }


def test_wanvideo_nodes_run_the_packs_node_on_the_chosen_device(start_comfy):
    started = start_comfy(DISTORCH_FIRST)
    shape = sys.modules[os.path.join(started.root, "ComfyUI-WanVideoWrapper").replace(".", "_x_") + ".shape"]
    loading = started.wan_module("nodes_model_loading")
    import_time_device = loading.device
    prompt = _wan_prompt()
    for node_id in ("2", "4", "5"):
        ok, errors = validate_inputs(prompt, node_id, nodes.NODE_CLASS_MAPPINGS)
        assert ok, errors
    executor = PromptExecutor(nodes.NODE_CLASS_MAPPINGS)
    text = executor.execute(prompt, "2")
    model_out = executor.execute(prompt, "4")
    vae_out = executor.execute(prompt, "5")
    calls = {c[0]: c for c in shape.CALLS}
    _, mod_device, _, asked, kwargs = calls["LoadWanVideoT5TextEncoder"]
    assert kwargs["load_device"] == "offload_device" and mod_device == torch.device("cpu")
    _, _, _, _, kwargs = calls["WanVideoTextEncode"]
    assert kwargs["device"] == "cpu"
    assert kwargs["t5"] == "LoadWanVideoT5TextEncoder:wan_t5_model"  # the model itself, not a tuple
    assert text == ("WanVideoTextEncode:text_embeds",)
    _, mod_device, _, asked, kwargs = calls["WanVideoModelLoader"]
    assert mod_device == torch.device("cuda:1") == asked
    assert kwargs["block_swap_args"]["swap_device"] == "cpu" and "compute_device" not in kwargs
    assert model_out == ("WanVideoModelLoader:model", "cuda:1")
    assert vae_out == ("WanVideoVAELoader:vae", "cpu")
    assert loading.device is import_time_device  # put back after each call


def test_wanvideo_sampler_and_decode_take_the_loaders_device(start_comfy):
    started = start_comfy(DISTORCH_LAST)
    shape = sys.modules[os.path.join(started.root, "ComfyUI-WanVideoWrapper").replace(".", "_x_") + ".shape"]
    sampler_mod = started.wan_module("nodes_sampler")
    before = (sampler_mod.device, sampler_mod.offload_device)
    model = type("Patcher", (), {"model_options": {"transformer_options": {
        "block_swap_args": {"blocks_to_swap": 10, "swap_device": "cpu"}}}})()
    sampler = nodes.NODE_CLASS_MAPPINGS["WanVideoSamplerMultiGPU"]()
    out = sampler.distorch_wanvideo(model=model, compute_device="cpu", image_embeds={}, steps=1, cfg=1.0,
                                    shift=1.0, seed=0, force_offload=True, scheduler="unipc",
                                    riflex_freq_index=0)
    assert out == ("WanVideoSampler:samples", "WanVideoSampler:denoised_samples")
    name, mod_device, mod_offload, _, kwargs = shape.CALLS[-1]
    assert name == "WanVideoSampler" and "compute_device" not in kwargs
    assert mod_device == torch.device("cpu") and mod_offload == torch.device("cpu")
    assert (sampler_mod.device, sampler_mod.offload_device) == before
    decode = nodes.NODE_CLASS_MAPPINGS["WanVideoDecodeMultiGPU"]
    assert decode.VALIDATE_INPUTS(tile_x=100, tile_y=272, tile_stride_x=144, tile_stride_y=128) \
        == "Tile width must be larger than the tile stride width."
    out = decode().distorch_wanvideo(vae=("vae-object",), load_device="cpu", samples={}, enable_vae_tiling=False,
                                     tile_x=272, tile_y=272, tile_stride_x=144, tile_stride_y=128)
    assert shape.CALLS[-1][4]["vae"] == "vae-object"  # MultiGPU's tuple-wrapped VAE is accepted
