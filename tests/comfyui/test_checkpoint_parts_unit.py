"""The advanced checkpoint loaders load one checkpoint as three broker parts
(client_py/distorch/comfy/multigpu/checkpoint.py, loading.FilePart): which
tensors go in which part for ComfyUI 0.33's checkpoint layouts, each part with
its own compute device and allocation, the merged state dict ComfyUI gets, the
log line, and the fallbacks. On the fake ComfyUI with the stub broker."""

import logging
import sys
import types

import nodes
from execution import PromptExecutor, validate_inputs

from distorch.comfy import loading
from distorch.comfy.multigpu import checkpoint
from stub_client import StubClient

UNET = loading.LoadOptions(compute_device="sim:0", allocation="sim:0,50%;cpu,*")
CLIP = loading.LoadOptions(compute_device="sim:1", allocation="sim:1,1gb;cpu,*")
VAE = loading.LoadOptions(compute_device="cpu")


def split(names):
    return {p.role: (p.prefixes, p.options) for p in checkpoint.split_checkpoint(names, UNET, CLIP, VAE)}


def prefixes(names):
    return {role: got[0] for role, got in split(names).items()}


def blocks(prefix, n=8):
    return [f"{prefix}{i}.weight" for i in range(n)]


SD15 = (["alphas_cumprod", "alphas_cumprod_prev", "betas", "model_ema.decay", "model_ema.num_updates"]
        + blocks("cond_stage_model.transformer.text_model.encoder.layers.")
        + blocks("first_stage_model.decoder.up.") + blocks("model.diffusion_model.input_blocks."))
SDXL = (blocks("conditioner.embedders.0.transformer.text_model.encoder.layers.")
        + blocks("conditioner.embedders.1.model.transformer.resblocks.")
        + ["denoiser.sigmas"] + blocks("first_stage_model.encoder.down.")
        + blocks("model.diffusion_model.output_blocks."))
FLUX_CKPT = (blocks("model.diffusion_model.double_blocks.") + blocks("text_encoders.clip_l.transformer.")
             + blocks("text_encoders.t5xxl.transformer.") + blocks("vae.decoder.up."))


def test_sd15_layout():
    got = split(SD15)
    assert got["unet"] == (("alphas_cumprod", "betas", "model_ema.", "model.diffusion_model."), UNET)
    assert got["clip"] == (("cond_stage_model.",), CLIP)
    assert got["vae"] == (("first_stage_model.",), VAE)


def test_sdxl_layout_keeps_clip_vision_and_sigmas_with_the_unet():
    names = SDXL + ["conditioner.embedders.0.open_clip.model.visual.proj"]
    assert prefixes(names) == {
        "unet": ("denoiser.", "model.diffusion_model.", "conditioner.embedders.0.open_clip."),
        "clip": ("conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."),
        "vae": ("first_stage_model.",)}


def test_flux_checkpoint_layout():
    assert prefixes(FLUX_CKPT) == {"unet": ("model.diffusion_model.",), "clip": ("text_encoders.",),
                                   "vae": ("vae.",)}


def test_every_tensor_is_in_exactly_one_part():
    for names in (SD15, SDXL, FLUX_CKPT):
        parts = checkpoint.split_checkpoint(names, UNET, CLIP, VAE)
        owners = {n: [p.role for p in parts if any(n.startswith(x) for x in p.prefixes)] for n in names}
        assert all(len(o) == 1 for o in owners.values()), owners


def test_a_checkpoint_without_clip_or_vae_loads_whole():
    assert checkpoint.split_checkpoint(blocks("model.diffusion_model.x."), UNET, CLIP, VAE) == []
    # one part besides the UNet is still two parts
    assert set(prefixes(blocks("model.diffusion_model.x.") + blocks("vae.d."))) == {"unet", "vae"}


def test_too_many_unet_prefixes_loads_whole(caplog):
    names = [f"extra_{i}_scale" for i in range(70)] + blocks("cond_stage_model.t.")
    with caplog.at_level(logging.WARNING):
        assert checkpoint.split_checkpoint(names, UNET, CLIP, VAE) == []
    assert "needs 70 tensor prefixes (at most 64)" in caplog.text


def test_the_running_comfyui_prefixes_are_added(monkeypatch):
    module = types.ModuleType("comfy.supported_models")
    module.models = [type("NewModel", (), {"text_encoder_key_prefix": ["te_new."],
                                           "vae_key_prefix": ["model.diffusion_model."]})]
    monkeypatch.setitem(sys.modules, "comfy.supported_models", module)
    names = blocks("model.diffusion_model.b.") + blocks("te_new.enc.")
    # a prefix inside the diffusion model's is never used
    assert prefixes(names) == {"unet": ("model.diffusion_model.",), "clip": ("te_new.",)}


# ---------------------------------------------------------------- the nodes

def mappings(env):
    return {**nodes.NODE_CLASS_MAPPINGS, **env.classes}


def run(env, inputs, node="CheckpointLoaderAdvancedDisTorch2MultiGPU"):
    prompt = {"1": {"class_type": node, "inputs": {"ckpt_name": env.names["ckpt"], **inputs}}}
    ok, errors = validate_inputs(prompt, "1", mappings(env))
    assert ok, errors
    return PromptExecutor(mappings(env)).execute(prompt, "1")


DISTORCH2 = {"unet_compute_device": "sim:0", "unet_virtual_vram_gb": 0.0, "unet_donor_device": "cpu",
             "clip_compute_device": "sim:1", "clip_virtual_vram_gb": 0.0, "clip_donor_device": "cpu",
             "vae_device": "cpu", "unet_expert_mode_allocations": "sim:0,50%;cpu,*",
             "clip_expert_mode_allocations": "sim:1,60%;cpu,*"}


def test_three_parts_each_placed_as_asked_and_merged_for_comfyui(comfy_env, caplog):
    env = comfy_env
    with caplog.at_level(logging.INFO, logger="distorch"):
        model, clip, vae = run(env, DISTORCH2)
    loads = env.client.loads
    assert [(load["prefixes"], load["compute"], load["allocation"]) for load in loads] == [
        (("model.diffusion_model.",), "sim:0", "sim:0,50%;cpu,*"),
        (("cond_stage_model.",), "sim:1", "sim:1,60%;cpu,*"),
        (("first_stage_model.",), "cpu", "")]
    parts = [m for m in env.client.live]
    assert len({m.model_id for m in parts}) == 3
    # disjoint, and together the whole file
    names = [n for m in parts for n in m.tensors]
    assert len(names) == len(set(names)) == 20
    # ComfyUI built its models from the broker's tensors of each part
    entry = model.model._distorch_placement.entry
    assert [m for _, m in entry.loaded] == parts
    for part, root in zip(parts, (model.model, clip.patcher.model, vae.patcher.model)):
        mine = {p.data_ptr() for p in root.parameters()}
        assert mine & {t.data_ptr() for t in part.tensors.values()}, part.tensors.keys()
    text = caplog.text
    assert "ckpt.safetensors loaded in 3 parts, each a broker residency of its own: unet " \
           "(model.diffusion_model.): compute sim:0, allocation 'sim:0,50%;cpu,*' -> " in text
    assert "clip (cond_stage_model.): compute sim:1, allocation 'sim:1,60%;cpu,*' -> " in text
    assert "vae (first_stage_model.): compute cpu, all on compute -> cpu " in text
    assert "CLIP: compute sim:1, allocation 'sim:1,60%;cpu,*'; VAE: all on cpu" in text


def test_a_second_run_reuses_and_a_clip_change_reloads(comfy_env):
    env = comfy_env
    cls = env.classes["CheckpointLoaderAdvancedDisTorch2MultiGPU"]
    args = {"ckpt_name": env.names["ckpt"], **DISTORCH2}
    changed = dict(args, clip_expert_mode_allocations="sim:1,10%;cpu,*")
    assert cls.IS_CHANGED(**changed) != cls.IS_CHANGED(**args)
    ex = PromptExecutor(mappings(env))
    first = ex.execute({"1": {"class_type": cls.__name__, "inputs": args}}, "1")
    assert ex.execute({"1": {"class_type": cls.__name__, "inputs": args}}, "1") is first
    assert len(env.client.loads) == 3  # reused, not loaded again
    ex.execute({"1": {"class_type": cls.__name__, "inputs": changed}}, "1")
    assert [load["allocation"] for load in env.client.loads[3:]] == \
        ["sim:0,50%;cpu,*", "sim:1,10%;cpu,*", ""]


def test_a_client_without_parts_loads_the_file_whole(comfy_env, caplog):
    env = comfy_env
    stub = env.client
    original = StubClient.load

    def load(path, allocation="", compute_device="", keep_loaded=False, pins=(), allow_spill=False,
             weight_dtype="", name=None, progress=None, writable=False):
        return original(stub, path, allocation, compute_device, keep_loaded, pins, allow_spill,
                        weight_dtype, name, progress, writable)
    stub.load = load
    with caplog.at_level(logging.WARNING, logger="distorch"):
        run(env, DISTORCH2)
    assert [(load["prefixes"], load["compute"]) for load in stub.loads] == [((), "sim:0")]
    assert "cannot load part of a file; loading it whole with the unet part's placement" in caplog.text


def test_device_only_node_puts_each_part_on_its_device(comfy_env):
    env = comfy_env
    run(env, {"unet_device": "sim:1", "clip_device": "sim:0", "vae_device": "cpu"},
        node="CheckpointLoaderAdvancedMultiGPU")
    got = [(load["prefixes"], load["compute"], load["allocation"]) for load in env.client.loads]
    assert got == [(("model.diffusion_model.",), "sim:1", ""), (("cond_stage_model.",), "sim:0", ""),
                   (("first_stage_model.",), "cpu", "")]
    devices = [set(m.tensor_devices.values()) for m in env.client.live]
    assert devices == [{"sim:1"}, {"sim:0"}, {"cpu"}]
