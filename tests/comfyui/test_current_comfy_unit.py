"""distorch on ComfyUI 0.33.0's shapes (fake_comfy mirrors them): DynamicVRAM
builds, clones and deep clones, and the pinned-memory accounting of
load_models_gpu."""

import inspect
import logging

import pytest
import torch

import comfy.memory_management
import comfy.model_management as mm
import comfy.model_patcher
import comfy.ops
import comfy.sd
import nodes
from distorch.comfy import dynamic_vram, loading

TORCH_ASSIGN = "assign" in inspect.signature(torch.nn.Module.load_state_dict).parameters
needs_assign = pytest.mark.skipif(not TORCH_ASSIGN, reason="load_state_dict(assign=) needs torch >= 2.1 "
                                                           "(as ComfyUI 0.33 does)")


def broker_ptrs(env):
    return {t.data_ptr() for loaded in env.client.live for t in loaded.tensors.values()}


def load_unet(env, role="unet_a", compute="sim:0", **extra):
    return env.classes["DistorchUNETLoader"]().distorch_load(unet_name=env.names[role], compute_device=compute,
                                                             **extra)[0]


def run(model):
    return nodes.RunModel().run(model)[0]


@pytest.fixture
def dynamic_vram_on(comfy_env, monkeypatch):
    """ComfyUI 0.33 on a GPU with comfy-aimdo: main.py's two switches, and a
    load device ModelPatcherDynamic does not reroute (the fake's cpu stands
    in for the GPU)."""
    monkeypatch.setattr(comfy.memory_management, "aimdo_enabled", True)
    monkeypatch.setattr(comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcherDynamic)
    monkeypatch.setattr(mm, "is_device_cpu", lambda device: False)
    monkeypatch.setattr(dynamic_vram, "_told", False)
    return comfy_env


# -- 1. DynamicVRAM builds ----------------------------------------------------------

def test_stock_load_under_dynamic_vram_is_dynamic_and_assigns(dynamic_vram_on):
    """The fake's shape: a stock load gets ModelPatcherDynamic and loads with
    assign=True, so lazy Linear weights are the loaded tensors themselves."""
    stock = nodes.UNETLoader().load_unet(dynamic_vram_on.names["unet_a"])[0]
    assert type(stock) is comfy.model_patcher.ModelPatcherDynamic and stock.is_dynamic()
    assert stock.model.blocks[0].proj.weight.shape == (8, 8)


def test_distorch_model_is_classic_and_lazy_layers_are_broker_views(dynamic_vram_on, caplog):
    env = dynamic_vram_on
    with caplog.at_level(logging.WARNING):
        first = load_unet(env, "unet_a")
        load_unet(env, "unet_b")
    assert type(first).__name__ == "DistorchModelPatcher" and not first.is_dynamic()
    assert not hasattr(first.model, "dynamic_patchers")  # never built as a DynamicVRAM model
    ptrs = broker_ptrs(env)
    lazy = first.model.blocks[0].proj
    # aimdo's Linear loads through _lazy_load_from_state_dict, never through
    # Module._load_from_state_dict; its weight is still the broker's memory
    assert type(lazy)._load_from_state_dict is comfy.ops.disable_weight_init.Linear._load_from_state_dict
    for key, p in first.model.named_parameters():
        assert p.data_ptr() in ptrs, key
    assert first.model_size() == 0  # nothing of it is this process's own memory
    told = [r for r in caplog.records if r.getMessage() == dynamic_vram.MESSAGE]
    assert len(told) == 1
    assert torch.equal(run(first), run(nodes.UNETLoader().load_unet(env.names["unet_a"])[0]))


def test_lazy_layers_get_the_model_dtype(dynamic_vram_on, caplog):
    """weight_dtype fp16 on an fp32 file: every parameter is fp16 (what a
    classic load gives), cast copies are this process's and counted."""
    env = dynamic_vram_on
    with caplog.at_level(logging.INFO):
        model = load_unet(env, weight_dtype="fp16")
    ptrs = broker_ptrs(env)
    for key, p in model.model.named_parameters():
        assert p.dtype == torch.float16, key
        assert p.data_ptr() not in ptrs, key
    own = sum(p.numel() * 2 for p in model.model.parameters())
    assert model.model_size() == own
    summary = [r.getMessage() for r in caplog.records if "dtype cast(s)" in r.getMessage()][-1]
    assert f"{len(list(model.model.parameters()))} dtype cast(s)" in summary, summary


@needs_assign
def test_assign_true_load_adopts_in_the_model_dtype(comfy_env):
    """load_state_dict(assign=True) (a DynamicVRAM patcher's load) inside an
    adoption: a broker tensor in the module's dtype is the parameter; one in
    another dtype becomes a copy in the module's dtype, not the file's."""
    broker = {"conv_in.weight": torch.randn(8, 4, 3, 3), "conv_in.bias": torch.randn(8),
              "pos_embed": torch.randn(1, 8).half()}
    adoption = loading.Adoption(mode="real", options=loading.LoadOptions(compute_device="sim:0"))
    for name, t in broker.items():
        adoption.index.add(t, name, "sim:0")
    model = comfy.sd.TinyUNet(dtype=torch.float32)
    with loading.adopting(adoption):
        model.load_state_dict(dict(broker), strict=False, assign=True)
    assert model.conv_in.weight.data_ptr() == broker["conv_in.weight"].data_ptr()
    assert model.pos_embed.dtype == torch.float32
    assert model.pos_embed.data_ptr() != broker["pos_embed"].data_ptr()
    assert [c[0] for c in adoption.copied] == ["pos_embed"]


@needs_assign
def test_dynamic_patcher_that_slipped_through_is_demoted_with_broker_views(dynamic_vram_on, monkeypatch):
    """If the ModelPatcherDynamic hook is left out (ComfyUI changed it), the
    loader assigns (assign=True) and the patcher is demoted afterwards: the
    parameters are still broker views in the model's dtype."""
    env = dynamic_vram_on
    cls = comfy.model_patcher.ModelPatcherDynamic
    monkeypatch.setattr(cls, "__new__", staticmethod(lambda klass, *a, **k: object.__new__(klass)))
    model = load_unet(env)
    assert type(model).__name__ == "DistorchModelPatcher" and not model.is_dynamic()
    ptrs = broker_ptrs(env)
    for key, p in model.model.named_parameters():
        assert p.data_ptr() in ptrs, key
        assert p.dtype == torch.float32, key


def test_compute_dtype_casts_every_comfy_op_at_forward(comfy_env):
    """set_model_compute_dtype (0.33: CLIP, training) -> force_cast_weights:
    the broker patcher casts every comfy.ops module at forward, like
    ComfyUI's classic load."""
    model = load_unet(comfy_env)
    model.set_model_compute_dtype(torch.float32)
    mm.load_models_gpu([model])
    for name in ("conv_in", "blocks.0.proj", "out"):
        assert model.model.get_submodule(name).comfy_cast_weights is True, name


# -- 2. clones ----------------------------------------------------------------------

def test_clone_shares_the_broker_model(dynamic_vram_on):
    env = dynamic_vram_on
    model = load_unet(env)
    for clone in (model.clone(), model.clone(disable_dynamic=True)):
        assert type(clone) is type(model)
        assert clone.model is model.model
        assert clone.cached_patcher_init == model.cached_patcher_init
    clip = env.classes["DistorchCLIPLoader"]().distorch_load(clip_name=env.names["te_a"],
                                                             compute_device="sim:0")[0]
    assert type(clip.clone(disable_dynamic=True).patcher).__name__ == "DistorchModelPatcher"


def test_force_deepcopy_is_a_private_classic_copy(dynamic_vram_on, caplog):
    env = dynamic_vram_on
    model = load_unet(env)
    expected = run(model)
    with caplog.at_level(logging.INFO):
        copy = model.clone(force_deepcopy=True)
    assert type(copy) is comfy.model_patcher.ModelPatcher
    assert copy.model is not model.model
    assert not hasattr(copy.model, "dynamic_patchers")  # reloaded with disable_dynamic=True
    ptrs = broker_ptrs(env)
    assert all(p.data_ptr() not in ptrs for p in copy.model.parameters())
    assert copy.model_size() > 0
    assert any("deep copy" in r.getMessage() and "unet_a" in r.getMessage() for r in caplog.records)
    # training writes the copy's weights; the broker's stay as they were
    base = {k: t.clone() for k, t in env.client.live[0].tensors.items()}
    with torch.no_grad():
        for p in copy.model.parameters():
            p.add_(1.0)
    for k, t in env.client.live[0].tensors.items():
        assert torch.equal(t, base[k]), k
    assert torch.equal(run(model), expected)


def test_multigpu_deep_clone_is_a_private_classic_copy(dynamic_vram_on):
    env = dynamic_vram_on
    model = load_unet(env)
    target = torch.device("cuda", 1)  # a second GPU (a label: nothing is moved there)
    clone = model.deepclone_multigpu(new_load_device=target)
    assert type(clone) is comfy.model_patcher.ModelPatcher
    assert clone.load_device == target
    assert clone.model is not model.model and not hasattr(clone.model, "dynamic_patchers")
    ptrs = broker_ptrs(env)
    assert all(p.data_ptr() not in ptrs for p in clone.model.parameters())
    assert model.cached_patcher_init[0] is comfy.sd.load_diffusion_model  # restored
    assert type(model).__name__ == "DistorchModelPatcher"


# -- 3. pinned-memory accounting ----------------------------------------------------

def test_distorch_load_does_not_evict_or_unpin_other_models(monkeypatch, tmp_path):
    """A DynamicVRAM model holds pinned host memory on cuda:0. Loading a
    distorch model there next to it must not unpin it or unload it: the
    broker's bytes are resident already and need no pins of ComfyUI's."""
    import folder_paths
    import distorch.comfy as dc
    from distorch.comfy import registry, session
    from stub_client import StubClient
    import tiny_models
    names = tiny_models.write_all(str(tmp_path))
    monkeypatch.setattr(folder_paths, "MODELS_DIR", str(tmp_path))
    client = StubClient(device_names=("cuda:0", "cpu"), spread=("cpu",))
    session.set_client_factory(lambda: client)
    registry.REGISTRY.__init__()
    mm.current_loaded_models.clear()
    try:
        classes, _ = dc.setup(nodes.NODE_CLASS_MAPPINGS)
        gpu = torch.device("cuda", 0)  # a label: nothing is moved there
        stock = comfy.model_patcher.ModelPatcherDynamic(comfy.sd.TinyUNet(dtype=torch.float32), load_device=gpu,
                                                        offload_device=torch.device("cpu"))
        mm.load_models_gpu([stock])
        pinned = stock.pinned_memory_size()
        assert pinned > 0 and mm.TOTAL_PINNED_MEMORY >= pinned
        model = classes["DistorchUNETLoader"]().distorch_load(unet_name=names["unet_a"], compute_device="cuda:0")[0]
        assert model.load_device == gpu and model.model_size() == 0
        # RAM and VRAM so tight that a model needing its own bytes would evict
        monkeypatch.setattr(mm, "AVAILABLE_RAM", [2048 * 1024 ** 2])
        monkeypatch.setattr(mm, "FREE_VRAM", [int(mm.minimum_inference_memory()) + 64])
        mm.CALLS.clear()
        mm.load_models_gpu([model])
        assert not [c for c in mm.CALLS if isinstance(c, tuple) and c[0] == "unpin"]
        assert stock.pinned_memory_size() == pinned
        assert [m.model for m in mm.current_loaded_models] == [model, stock]
        # the same load with the model counted the stock way (all of it
        # ComfyUI's to pin) unpins the other model's memory
        mm.unload_model_and_clones(model)
        monkeypatch.setattr(type(model), "model_size", comfy.model_patcher.ModelPatcher.model_size)
        model.size = 0
        mm.load_models_gpu([model])
        assert [c for c in mm.CALLS if isinstance(c, tuple) and c[0] == "unpin"]
        assert stock.pinned_memory_size() < pinned
    finally:
        dc.teardown()
        session.set_client_factory(None)
        mm.current_loaded_models.clear()
        registry.REGISTRY.__init__()
        mm.TOTAL_PINNED_MEMORY = 0
