"""ComfyUI-MultiGPU's node names served by distorch (client_py/distorch/comfy/multigpu)
on the fake ComfyUI 0.33: which names register, their inputs and defaults against
a table written from ComfyUI-MultiGPU 2.6.3's code, MultiGPU-style API-format
workflows that validate and run through the stub broker with the allocation their
inputs ask for, the advanced checkpoint loaders, GGUF, a third-party pack, and
coexistence with ComfyUI-MultiGPU itself."""

import logging
import os
import shutil
import sys
import types

import pytest
import torch

import comfy.model_management as mm
import folder_paths
import nodes
import nodes_extra_loaders
import server
from comfy_api.latest import io
from execution import PromptExecutor, validate_inputs
from main import free_flow

HERE = os.path.dirname(os.path.abspath(__file__))
DEVICES = ["cpu", "sim:0", "sim:1"]  # MultiGPU's order: cpu first; default the second

# ---------------------------------------------------------------- the table
# Written from ComfyUI-MultiGPU 2.6.3 wrappers.py (input names, types, options,
# categories) and __init__.py (which family wraps which loader).
DEVICE = {"device": (DEVICES, {"default": "sim:0"})}        # override_class(_clip)
DISTORCH2 = {                                                # _create_distorch_safetensor_v2_override
    "compute_device": (DEVICES, {"default": "sim:0"}),
    "virtual_vram_gb": ("FLOAT", {"default": 4.0, "min": 0.0, "max": 128.0, "step": 0.1}),
    "donor_device": (DEVICES, {"default": "cpu"}),
    "expert_mode_allocations": ("STRING", {"multiline": False, "default": ""}),
    "eject_models": ("BOOLEAN", {"default": True})}
DISTORCH2_CLIP = {("device" if k == "compute_device" else k): v for k, v in DISTORCH2.items()}
DISTORCH2_CLIP["eject_models"] = ("BOOLEAN", {"default": False})   # eject_models_default=False
LEGACY = {                                                   # override_class_with_distorch_gguf / _clip
    "device": (DEVICES, {"default": "sim:0"}),
    "virtual_vram_gb": ("FLOAT", {"default": 4.0, "min": 0.0, "max": 24.0, "step": 0.1}),
    "use_other_vram": ("BOOLEAN", {"default": False}),
    "expert_mode_allocations": ("STRING", {"multiline": False, "default": ""})}

# (MultiGPU name, base loader, added inputs, category), __init__.py 2.6.3
CORE = []
for base, clip in (("UNETLoader", False), ("VAELoader", False), ("CLIPLoader", True),
                   ("DualCLIPLoader", True), ("TripleCLIPLoader", True), ("QuadrupleCLIPLoader", True),
                   ("CLIPVisionLoader", True), ("CheckpointLoaderSimple", False),
                   ("ControlNetLoader", False), ("DiffusersLoader", False), ("DiffControlNetLoader", False)):
    CORE.append((base + "MultiGPU", base, DEVICE, "multigpu"))
    CORE.append((base + "DisTorch2MultiGPU", base, DISTORCH2_CLIP if clip else DISTORCH2,
                 "multigpu/distorch_2"))
OTHERS = ["CheckpointLoaderAdvancedMultiGPU", "CheckpointLoaderAdvancedDisTorch2MultiGPU",
          "DeviceSelectorMultiGPU", "UNetLoaderLP"]
# checkpoint_multigpu.py 2.6.3
ADVANCED_DISTORCH2 = {
    "required": ["ckpt_name", "unet_compute_device", "unet_virtual_vram_gb", "unet_donor_device",
                 "clip_compute_device", "clip_virtual_vram_gb", "clip_donor_device", "vae_device"],
    "optional": {"unet_expert_mode_allocations": ("STRING", {"multiline": False, "default": ""}),
                 "clip_expert_mode_allocations": ("STRING", {"multiline": False, "default": ""}),
                 "high_precision_loras": ("BOOLEAN", {"default": True}),
                 "eject_models": ("BOOLEAN", {"default": True})}}


@pytest.fixture
def extra_loaders(monkeypatch):
    """ComfyUI 0.33's CLIPVisionLoader, DiffusersLoader, DiffControlNetLoader."""
    for name, cls in nodes_extra_loaders.NODE_CLASS_MAPPINGS.items():
        monkeypatch.setitem(nodes.NODE_CLASS_MAPPINGS, name, cls)


@pytest.fixture
def env(extra_loaders, comfy_env):
    d = os.path.join(comfy_env.dir, "diffusers", "tiny")
    for sub, role, name in (("unet", "unet_a", "diffusion_pytorch_model"),
                            ("text_encoder", "te_a", "model"), ("vae", "vae", "diffusion_pytorch_model")):
        os.makedirs(os.path.join(d, sub))
        shutil.copy(os.path.join(comfy_env.dir, comfy_env.names[role]),
                    os.path.join(d, sub, name + ".safetensors"))
    open(os.path.join(d, "model_index.json"), "w").write("{}")
    return comfy_env


def mappings(env):
    return {**nodes.NODE_CLASS_MAPPINGS, **env.classes}


def multigpu_names(classes):
    return {n for n in classes if not n.startswith("Distorch")}


def run(env, prompt, node_id="1"):
    ok, errors = validate_inputs(prompt, node_id, mappings(env))
    assert ok, errors
    return PromptExecutor(mappings(env)).execute(prompt, node_id)


# ---------------------------------------------------------------- registration

def test_every_multigpu_name_whose_loader_exists_is_registered(env):
    assert multigpu_names(env.classes) == {n for n, *_ in CORE} | set(OTHERS)
    assert len(multigpu_names(env.classes)) == 26


def test_names_of_missing_loaders_are_left_out(comfy_env):
    """The fake tree without the three extra loaders: their six names are absent."""
    missing = {n for n, base, *_ in CORE if base in nodes_extra_loaders.NODE_CLASS_MAPPINGS}
    assert len(missing) == 6
    assert multigpu_names(comfy_env.classes) == ({n for n, *_ in CORE} | set(OTHERS)) - missing


@pytest.mark.parametrize("name,base,added,category", CORE, ids=[c[0] for c in CORE])
def test_inputs_and_defaults_match_multigpu(env, name, base, added, category):
    info = server.object_info(mappings(env))
    stock = server.node_info(base, mappings(env))["input"]
    mine = info[name]["input"]
    assert info[name]["category"] == category
    assert info[name]["display_name"] == name  # MultiGPU registers no display names
    assert list(mine["required"]) == list(stock["required"])
    optional = mine.get("optional", {})
    # the stock optional inputs first (a stock `device` replaced where it stands)
    stock_optional = [k for k in stock.get("optional", {}) if k not in added]
    assert list(optional)[:len(stock_optional)] == stock_optional
    for key, (kind, opts) in added.items():
        got = optional[key]
        if isinstance(kind, list):  # device combo: V1 list, V3 ("COMBO", {"options": ...})
            options = got[0] if isinstance(got[0], list) else got[1]["options"]
            assert options == kind, key
            assert got[1]["default"] == opts["default"], key
        else:
            assert got[0] == kind, key
            for k, v in opts.items():
                assert got[1][k] == v, (key, k)
    assert list(optional)[len(optional) - len(added):] == list(added) or "device" in stock.get("optional", {})


def test_v3_stock_loaders_get_v3_multigpu_nodes(env):
    for name in ("TripleCLIPLoaderMultiGPU", "TripleCLIPLoaderDisTorch2MultiGPU",
                 "QuadrupleCLIPLoaderMultiGPU", "QuadrupleCLIPLoaderDisTorch2MultiGPU"):
        cls = env.classes[name]
        assert issubclass(cls, io.ComfyNode)
        assert cls.GET_SCHEMA().node_id == name
    assert not issubclass(env.classes["CLIPLoaderMultiGPU"], io.ComfyNode)


def test_advanced_checkpoint_and_selector_inputs(env):
    info = server.object_info(mappings(env))
    adv = info["CheckpointLoaderAdvancedMultiGPU"]["input"]["required"]
    assert list(adv) == ["ckpt_name", "unet_device", "clip_device", "vae_device"]
    assert all(adv[k] == (DEVICES, {"default": "sim:0"}) for k in list(adv)[1:])
    d2 = info["CheckpointLoaderAdvancedDisTorch2MultiGPU"]["input"]
    assert list(d2["required"]) == ADVANCED_DISTORCH2["required"]
    assert d2["required"]["unet_virtual_vram_gb"] == ("FLOAT", {"default": 4.0, "min": 0.0, "max": 128.0, "step": 0.1})
    assert d2["required"]["clip_virtual_vram_gb"][1]["default"] == 2.0
    assert d2["required"]["clip_compute_device"] == (DEVICES, {"default": "cpu"})
    assert d2["optional"] == ADVANCED_DISTORCH2["optional"]
    sel = info["DeviceSelectorMultiGPU"]
    assert sel["input"]["required"] == {"device": (DEVICES,)}
    assert sel["output"] == ("MULTIGPUDEVICE",) and sel["output_name"] == ("device",)
    assert list(info["UNetLoaderLP"]["input"]["required"]) == ["unet_name"]


# ---------------------------------------------------------------- workflows

def _files(env, *roles):
    return [env.names[r] for r in roles]


def workflows(env):
    """(node, expected broker loads as (file role, compute, allocation, keep))."""
    n = env.names
    return [
        ({"class_type": "UNETLoaderMultiGPU",
          "inputs": {"unet_name": n["unet_a"], "weight_dtype": "default", "device": "sim:1"}},
         [("unet_a", "sim:1", "", False)]),
        ({"class_type": "UNETLoaderDisTorch2MultiGPU",
          "inputs": {"unet_name": n["unet_a"], "weight_dtype": "default", "compute_device": "sim:0",
                     "virtual_vram_gb": 4.0, "donor_device": "cpu", "expert_mode_allocations": "",
                     "eject_models": True}},
         [("unet_a", "sim:0", "compute=sim:0, virtual_vram_gb=4, donors=cpu", False)]),
        ({"class_type": "VAELoaderDisTorch2MultiGPU",
          "inputs": {"vae_name": n["vae"], "compute_device": "sim:1", "virtual_vram_gb": 0.0,
                     "donor_device": "cpu", "expert_mode_allocations": "", "eject_models": False}},
         [("vae", "sim:1", "", True)]),
        ({"class_type": "CLIPLoaderMultiGPU",
          "inputs": {"clip_name": n["te_a"], "type": "stable_diffusion", "device": "sim:0"}},
         [("te_a", "sim:0", "", False)]),
        ({"class_type": "CLIPLoaderDisTorch2MultiGPU",   # eject_models left out: CLIP default False
          "inputs": {"clip_name": n["te_a"], "type": "stable_diffusion", "device": "sim:0",
                     "virtual_vram_gb": 4.0, "donor_device": "cpu",
                     "expert_mode_allocations": "sim:0,50%;cpu,*"}},
         [("te_a", "sim:0", "sim:0,50%;cpu,*", True)]),
        ({"class_type": "DualCLIPLoaderDisTorch2MultiGPU",
          "inputs": {"clip_name1": n["te_a"], "clip_name2": n["te_b"], "type": "flux", "device": "sim:1",
                     "virtual_vram_gb": 1.5, "donor_device": "sim:0", "expert_mode_allocations": "",
                     "eject_models": True}},
         [(r, "sim:1", "compute=sim:1, virtual_vram_gb=1.5, donors=sim:0", False) for r in ("te_a", "te_b")]),
        ({"class_type": "TripleCLIPLoaderDisTorch2MultiGPU",   # MultiGPU's logged string, pasted
          "inputs": {"clip_name1": n["te_a"], "clip_name2": n["te_b"], "clip_name3": n["te_a"],
                     "device": "sim:0", "virtual_vram_gb": 4.0, "donor_device": "cpu",
                     "expert_mode_allocations": "sim:0,1gb;cpu,*#sim:0;4.0;cpu", "eject_models": False}},
         [(r, "sim:0", "sim:0,1gb;cpu,*#sim:0;4.0;cpu", True) for r in ("te_a", "te_b", "te_a")]),
        ({"class_type": "QuadrupleCLIPLoaderMultiGPU",
          "inputs": {**{f"clip_name{i}": n["te_b"] for i in range(1, 5)}, "device": "sim:1"}},
         [("te_b", "sim:1", "", False)] * 4),
        ({"class_type": "CLIPVisionLoaderDisTorch2MultiGPU",   # legacy compute;gb;donors form
          "inputs": {"clip_name": n["vae"], "device": "sim:0", "virtual_vram_gb": 0.0,
                     "donor_device": "cpu", "expert_mode_allocations": "sim:0;2.0;sim:1,cpu"}},
         [("vae", "sim:0", "sim:0;2.0;sim:1,cpu", True)]),
        ({"class_type": "CLIPVisionLoaderMultiGPU", "inputs": {"clip_name": n["vae"], "device": "cpu"}},
         [("vae", "cpu", "", False)]),
        ({"class_type": "CheckpointLoaderSimpleDisTorch2MultiGPU",
          "inputs": {"ckpt_name": n["ckpt"], "compute_device": "sim:0", "virtual_vram_gb": 2.0,
                     "donor_device": "sim:1", "expert_mode_allocations": "", "eject_models": True}},
         [("ckpt", "sim:0", "compute=sim:0, virtual_vram_gb=2, donors=sim:1", False)]),
        ({"class_type": "CheckpointLoaderSimpleMultiGPU", "inputs": {"ckpt_name": n["ckpt"], "device": "sim:1"}},
         [("ckpt", "sim:1", "", False)]),
        ({"class_type": "ControlNetLoaderDisTorch2MultiGPU",
          "inputs": {"control_net_name": n["cnet"], "compute_device": "sim:1", "virtual_vram_gb": 4.0,
                     "donor_device": "sim:1", "expert_mode_allocations": "", "eject_models": True}},
         [("cnet", "sim:1", "", False)]),   # donor == compute: nothing to move
        ({"class_type": "ControlNetLoaderMultiGPU", "inputs": {"control_net_name": n["cnet"], "device": "sim:0"}},
         [("cnet", "sim:0", "", False)]),
    ]


def _check_loads(env, expected):
    got = [(os.path.basename(load["path"]), load["compute"], load["allocation"], load["keep"])
           for load in env.client.loads]
    want = [(env.names[role], compute, alloc, keep) for role, compute, alloc, keep in expected]
    assert got == want


@pytest.mark.parametrize("index", range(14))
def test_multigpu_workflow_validates_and_loads_through_the_broker(env, index):
    node, expected = workflows(env)[index]
    out = run(env, {"1": node})
    _check_loads(env, expected)
    assert out and all(o is not None for o in out)
    ptrs = {t.data_ptr() for m in env.client.live for t in m.tensors.values()}
    from distorch.comfy.registry import roots_of
    for patcher in roots_of(out):
        assert any(p.data_ptr() in ptrs for p in patcher.model.parameters()), node["class_type"]


def test_left_out_inputs_take_multigpu_defaults(env):
    """A prompt with only the stock inputs: compute sim:0 (devices[1]) and
    virtual_vram_gb 4.0 to cpu, eject_models True."""
    run(env, {"1": {"class_type": "UNETLoaderDisTorch2MultiGPU",
                    "inputs": {"unet_name": env.names["unet_b"], "weight_dtype": "default"}}})
    _check_loads(env, [("unet_b", "sim:0", "compute=sim:0, virtual_vram_gb=4, donors=cpu", False)])


def test_diffusers_and_diffcontrolnet(env):
    out = run(env, {"1": {"class_type": "DiffusersLoaderDisTorch2MultiGPU",
                          "inputs": {"model_path": "tiny", "compute_device": "sim:1", "virtual_vram_gb": 0.5,
                                     "donor_device": "cpu", "expert_mode_allocations": "",
                                     "eject_models": True}}})
    assert len(out) == 3
    assert [(load["compute"], load["allocation"]) for load in env.client.loads] == \
        [("sim:1", "compute=sim:1, virtual_vram_gb=0.5, donors=cpu")] * 3
    prompt = {"1": {"class_type": "UNETLoaderMultiGPU",
                    "inputs": {"unet_name": env.names["unet_c"], "weight_dtype": "default", "device": "sim:0"}},
              "2": {"class_type": "DiffControlNetLoaderMultiGPU",
                    "inputs": {"model": ["1", 0], "control_net_name": env.names["cnet"], "device": "sim:1"}}}
    assert validate_inputs(prompt, "2", mappings(env))[0]
    PromptExecutor(mappings(env)).execute(prompt, "2")
    assert [(load["compute"], load["allocation"]) for load in env.client.loads[3:]] == [("sim:0", ""), ("sim:1", "")]


def test_the_log_line_says_what_was_asked_and_what_multigpu_would_have_done(env, caplog):
    caplog.set_level(logging.INFO)
    run(env, {"1": workflows(env)[1][0]})
    line = [r.getMessage() for r in caplog.records if "UNETLoaderDisTorch2MultiGPU" in r.getMessage()][0]
    assert line == ("distorch: UNETLoaderDisTorch2MultiGPU (node 1): compute sim:0, allocation "
                    "'compute=sim:0, virtual_vram_gb=4, donors=cpu', keep_loaded False; MultiGPU's "
                    "allocation string would be '#sim:0;4.0;cpu'")
    assert any("broker memory used in place" in r.getMessage() for r in caplog.records)


def test_eject_models_true_is_released_by_free_and_reloads(env):
    ex = PromptExecutor(mappings(env))
    prompt = {"1": workflows(env)[1][0]}
    ex.execute(prompt, "1")
    before = ex._signature("1", prompt)
    assert ex._signature("1", prompt) == before
    free_flow(ex, unload_models=True)
    assert ex._signature("1", prompt) != before
    ex.execute(prompt, "1")
    assert len(env.client.loads) == 2


def test_eject_models_false_is_kept_across_free(env):
    ex = PromptExecutor(mappings(env))
    prompt = {"1": workflows(env)[4][0]}   # CLIP DisTorch2, eject_models default False
    ex.execute(prompt, "1")
    before = ex._signature("1", prompt)
    free_flow(ex, unload_models=True)
    assert ex._signature("1", prompt) == before
    assert env.client.live[0].released is False


# ---------------------------------------------------------------- checkpoint advanced

def test_advanced_checkpoint_three_parts_separate_compute_devices(env, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    seen = {}
    real_vae = nodes_extra_loaders.comfy.sd.VAE.__init__

    def vae_init(self, sd=None, device=None):
        seen["vae"] = mm.vae_device()
        seen["te"] = mm.text_encoder_device()
        real_vae(self, sd=sd, device=device)
    monkeypatch.setattr(nodes_extra_loaders.comfy.sd.VAE, "__init__", vae_init)
    monkeypatch.setattr("distorch.comfy.devices.torch_device_for",
                        lambda name: torch.device("cpu") if name in ("cpu", "sim:0") else torch.device("meta"))
    prompt = {"1": {"class_type": "CheckpointLoaderAdvancedDisTorch2MultiGPU",
                    "inputs": {"ckpt_name": env.names["ckpt"], "unet_compute_device": "sim:0",
                               "unet_virtual_vram_gb": 4.0, "unet_donor_device": "cpu",
                               "clip_compute_device": "cpu", "clip_virtual_vram_gb": 2.0,
                               "clip_donor_device": "cpu", "vae_device": "sim:1"}}}
    assert validate_inputs(prompt, "1", mappings(env))[0]
    model, clip, vae = PromptExecutor(mappings(env)).execute(prompt, "1")
    # one broker part each: UNet, CLIP (compute cpu, donor cpu: nothing to move), VAE
    assert [(load["prefixes"], load["compute"], load["allocation"], load["keep"]) for load in env.client.loads] == \
        [(("model.diffusion_model.",), "sim:0", "compute=sim:0, virtual_vram_gb=4, donors=cpu", False),
         (("cond_stage_model.",), "cpu", "", False), (("first_stage_model.",), "sim:1", "", False)]
    assert seen == {"vae": torch.device("meta"), "te": torch.device("cpu")}
    assert vae.device == torch.device("meta")            # the VAE computes on vae_device
    assert clip.patcher.load_device == torch.device("cpu")
    assert mm.vae_device() != torch.device("meta")       # only inside the load
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "CLIP: compute cpu, all on compute" in text and "VAE: all on sim:1" in text
    assert "not applied" not in text


def test_advanced_checkpoint_applies_the_clip_allocation(env, caplog):
    caplog.set_level(logging.INFO)
    run(env, {"1": {"class_type": "CheckpointLoaderAdvancedDisTorch2MultiGPU",
                    "inputs": {"ckpt_name": env.names["ckpt"], "unet_compute_device": "sim:1",
                               "unet_virtual_vram_gb": 0.0, "unet_donor_device": "cpu",
                               "clip_compute_device": "sim:0", "clip_virtual_vram_gb": 2.0,
                               "clip_donor_device": "cpu", "vae_device": "sim:1",
                               "unet_expert_mode_allocations": "sim:1,75%;cpu,*", "eject_models": False}}})
    assert [(load["compute"], load["allocation"], load["keep"]) for load in env.client.loads] == \
        [("sim:1", "sim:1,75%;cpu,*", True), ("sim:0", "compute=sim:0, virtual_vram_gb=2, donors=cpu", True),
         ("sim:1", "", True)]
    assert any("clip (cond_stage_model.): compute sim:0, allocation 'compute=sim:0, virtual_vram_gb=2, "
               "donors=cpu' -> " in r.getMessage() for r in caplog.records)


def test_advanced_checkpoint_device_only(env):
    model, clip, vae = run(env, {"1": {"class_type": "CheckpointLoaderAdvancedMultiGPU",
                                       "inputs": {"ckpt_name": env.names["ckpt"], "unet_device": "sim:1",
                                                  "clip_device": "sim:0", "vae_device": "cpu"}}})
    assert [(load["compute"], load["allocation"]) for load in env.client.loads] == \
        [("sim:1", ""), ("sim:0", ""), ("cpu", "")]
    # each model computes where its own part was placed for, so none of its
    # weights counts as off the compute device (the real run's mgpu_ckpt_advanced)
    from distorch.comfy.patcher import PLACEMENT_ATTR
    for patcher, compute in ((model, "sim:1"), (clip.patcher, "sim:0"), (vae.patcher, "cpu")):
        placement = getattr(patcher.model, PLACEMENT_ATTR)
        assert placement.compute == compute
        assert {d for d in placement.devices.values() if d is not None} == {compute}


def test_unet_loader_lp_and_device_selector(env):
    run(env, {"1": {"class_type": "UNetLoaderLP", "inputs": {"unet_name": env.names["unet_d"]}}})
    assert [(load["compute"], load["allocation"]) for load in env.client.loads] == [("sim:0", "")]
    assert run(env, {"2": {"class_type": "DeviceSelectorMultiGPU", "inputs": {"device": "sim:1"}}}, "2") == ("sim:1",)


# ---------------------------------------------------------------- translation

def test_translation_rules():
    from distorch.comfy.multigpu import translate as t
    names = ["cuda:0", "cuda:1", "sim:0", "cpu"]
    r = t.legacy("cuda:0", 4.0, True, "", names)
    assert r.allocation == "compute=cuda:0, virtual_vram_gb=4, donors=cuda:1,sim:0,cpu"
    assert r.multigpu_string == "#cuda:0;4.0;cuda:1,sim:0,cpu" and r.keep_loaded is False
    assert t.legacy("cuda:1", 2.5, False, "", names).allocation == \
        "compute=cuda:1, virtual_vram_gb=2.5, donors=cpu"
    # MultiGPU's CPU-only default (compute cpu, donor cpu) moves nothing
    r = t.distorch2("cpu", 4.0, "cpu", "", True)
    assert (r.allocation, r.multigpu_string) == ("", "#cpu;4.0;cpu") and "nothing to move" in r.note
    # the expert string wins and goes to distorchd as written, whatever its form
    for expert in ("cuda:0,2.5gb;cpu,*", "cuda:0,25%;cpu,*", "cuda:0,0.8;cpu,0.5",
                   "cuda:0,2gb;cpu,*#cuda:0;4.0;cpu", "cuda:0;8.0;cuda:1,cpu", "#cuda:1;8.1;cuda:0,cpu"):
        r = t.distorch2("cuda:0", 4.0, "cpu", f"  {expert} ", False)
        assert (r.compute, r.allocation, r.keep_loaded) == ("cuda:0", expert, True)
        # a string already in MultiGPU's logged form is logged as it is (one '#'),
        # so a user can paste the log line back
        if "#" in expert:
            assert r.multigpu_string == expert
    assert t.distorch2("cuda:0", 0.0, "cpu", "cuda:0,1gb", True).multigpu_string == "cuda:0,1gb#cuda:0"
    assert t.distorch2("cuda:0", 0.0, "cpu", "", True).multigpu_string == ""
    assert t.device_only("sim:1") == t.BrokerRequest("sim:1", "", False, "")


# ---------------------------------------------------------------- GGUF

def test_gguf_names_register_and_load_through_the_broker(monkeypatch, tmp_path):
    import gguf_fixture
    import comfyui_gguf
    import distorch.comfy as dc
    from distorch.comfy import registry, session
    for name, cls in comfyui_gguf.NODE_CLASS_MAPPINGS.items():
        monkeypatch.setitem(nodes.NODE_CLASS_MAPPINGS, name, cls)
    gguf_fixture.write_quant_unet(str(tmp_path / "q.gguf"))
    monkeypatch.setattr(folder_paths, "MODELS_DIR", str(tmp_path))
    client = gguf_fixture.GgufStubClient()
    session.set_client_factory(lambda: client)
    registry.REGISTRY.__init__()
    try:
        classes, _ = dc.setup(nodes.NODE_CLASS_MAPPINGS)
        gguf = {n for n in classes if "GGUF" in n and not n.startswith("Distorch")}
        # the stand-in has ComfyUI-GGUF's two UNet loaders: 3 families each
        assert gguf == {f"UnetLoaderGGUF{a}{f}MultiGPU" for a in ("", "Advanced")
                        for f in ("", "DisTorch", "DisTorch2")}
        info = server.object_info({**nodes.NODE_CLASS_MAPPINGS, **classes})
        legacy = info["UnetLoaderGGUFDisTorchMultiGPU"]
        assert legacy["category"] == "multigpu/legacy"
        assert {k: v for k, v in legacy["input"]["optional"].items()} == LEGACY
        assert info["UnetLoaderGGUFDisTorch2MultiGPU"]["input"]["optional"] == DISTORCH2
        assert info["UnetLoaderGGUFMultiGPU"]["input"]["optional"] == DEVICE
        ex = PromptExecutor({**nodes.NODE_CLASS_MAPPINGS, **classes})
        prompt = {"1": {"class_type": "UnetLoaderGGUFDisTorchMultiGPU",
                        "inputs": {"unet_name": "q.gguf", "device": "sim:0", "virtual_vram_gb": 3.0,
                                   "use_other_vram": True, "expert_mode_allocations": ""}},
                  "2": {"class_type": "RunModel", "inputs": {"model": ["1", 0]}}}
        assert validate_inputs(prompt, "1", {**nodes.NODE_CLASS_MAPPINGS, **classes})[0]
        ex.execute(prompt, "2")
        assert [(load["compute"], load["allocation"]) for load in client.loads] == \
            [("sim:0", "compute=sim:0, virtual_vram_gb=3, donors=sim:1,cpu")]
        patcher = ex.outputs["1"][1][0]
        assert any(type(p).__name__ == "GGMLTensor" for p in patcher.model.parameters())
    finally:
        dc.teardown()
        session.set_client_factory(None)
        registry.REGISTRY.__init__()
        mm.current_loaded_models.clear()


# ---------------------------------------------------------------- third-party packs

@pytest.fixture
def florence2(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(HERE, "fake_packs"))
    import comfyui_florence2
    for name, cls in comfyui_florence2.NODE_CLASS_MAPPINGS.items():
        monkeypatch.setitem(nodes.NODE_CLASS_MAPPINGS, name, cls)
    return comfyui_florence2


def test_pack_names_register_only_when_the_pack_is_loaded(comfy_env):
    assert "Florence2ModelLoaderMultiGPU" not in comfy_env.classes


def test_florence2_names_with_device_and_offload_device(florence2, comfy_env):
    env = comfy_env
    env.client.device_names = ["cuda:1", "sim:0", "cpu"]
    for name in ("Florence2ModelLoaderMultiGPU", "DownloadAndLoadFlorence2ModelMultiGPU"):
        assert name in env.classes
    info = server.object_info(mappings(env))["Florence2ModelLoaderMultiGPU"]
    assert info["category"] == "multigpu"
    optional = info["input"]["optional"]
    # override_class_offload (wrappers.py 2.6.3): the pack's optional inputs, then device, offload_device
    assert list(optional) == ["lora", "convert_to_safetensors", "device", "offload_device"]
    assert optional["device"] == (["cpu", "cuda:1"], {"default": "cuda:1"})   # no sim: stock loading
    assert optional["offload_device"] == (["cpu", "cuda:1"], {"default": "cpu"})
    prompt = {"1": {"class_type": "Florence2ModelLoaderMultiGPU",
                    "inputs": {"model": "Florence-2-base", "precision": "fp32", "attention": "sdpa",
                               "device": "cuda:1", "offload_device": "cpu"}}}
    (model,) = run(env, prompt)
    assert model["device"] == torch.device("cuda:1") and model["offload_device"] == torch.device("cpu")
    assert env.client.loads == []  # the pack's own loading, not the broker's


# ---------------------------------------------------------------- coexistence

@pytest.fixture
def fresh_owner_log(monkeypatch):
    from distorch.comfy.multigpu import coexist
    monkeypatch.setattr(coexist, "_logged", False)


def test_multigpu_loaded_first_keeps_its_names(fresh_owner_log, monkeypatch, comfy_env, caplog):
    import distorch.comfy as dc
    theirs = types.ModuleType("custom_nodes.ComfyUI-MultiGPU")
    theirs.__file__ = "/x/custom_nodes/ComfyUI-MultiGPU/__init__.py"

    class DeviceSelectorMultiGPU:
        pass
    DeviceSelectorMultiGPU.__module__ = theirs.__name__
    monkeypatch.setitem(sys.modules, theirs.__name__, theirs)
    monkeypatch.setitem(nodes.NODE_CLASS_MAPPINGS, "DeviceSelectorMultiGPU", DeviceSelectorMultiGPU)
    dc.teardown()
    caplog.set_level(logging.INFO)
    classes, _ = dc.setup(nodes.NODE_CLASS_MAPPINGS)
    assert multigpu_names(classes) == set()
    assert "DistorchUNETLoader" in classes
    warnings = [r.getMessage() for r in caplog.records if "ComfyUI-MultiGPU is installed" in r.getMessage()]
    assert warnings == [
        "distorch: ComfyUI-MultiGPU is installed (/x/custom_nodes/ComfyUI-MultiGPU/__init__.py), so its "
        "node names (UNETLoaderDisTorch2MultiGPU, ...) stay ComfyUI-MultiGPU's and distorch registers "
        "none of them; its Distorch* nodes work as usual. To load MultiGPU workflows through distorchd, "
        "remove ComfyUI-MultiGPU (or rename its directory to *.disabled) and restart ComfyUI."]
    dc.teardown()
    dc.setup(nodes.NODE_CLASS_MAPPINGS)  # logged once per process
    assert len([r for r in caplog.records if "ComfyUI-MultiGPU is installed" in r.getMessage()]) == 1


@pytest.mark.parametrize("dirname,owned_by_multigpu", [
    ("ComfyUI-MultiGPU", True), ("comfyui-multigpu", True),
    ("ComfyUI-MultiGPU.disabled", False), ("ComfyUI-MultiGPU-notes.txt", False)])
def test_multigpu_on_disk_but_not_yet_loaded(fresh_owner_log, comfy_env, dirname, owned_by_multigpu):
    """ComfyUI 0.33 imports custom nodes in os.listdir order: one that loads
    after distorch would replace its names, so distorch leaves them alone."""
    import distorch.comfy as dc
    root = os.path.join(comfy_env.dir, "custom_nodes")
    path = os.path.join(root, dirname)
    if dirname.endswith(".txt"):
        os.makedirs(root)
        open(path, "w").close()
    else:
        os.makedirs(path)
    dc.teardown()
    classes, _ = dc.setup(nodes.NODE_CLASS_MAPPINGS)
    assert ("UNETLoaderDisTorch2MultiGPU" not in classes) == owned_by_multigpu
