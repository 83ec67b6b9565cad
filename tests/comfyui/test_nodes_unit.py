"""distorch.comfy nodes on the fake ComfyUI with a stub broker client."""

import gc
import logging
import os
import threading
import time

import pytest
import torch

import comfy.model_management as mm
import nodes
from execution import PromptExecutor
from main import free_flow


def unet_node(env, role="unet_a", keep=False, allocation="", compute="sim:0"):
    return {"class_type": "DistorchUNETLoader",
            "inputs": {"unet_name": env.names[role], "weight_dtype": "default", "compute_device": compute,
                       "virtual_vram_gb": 0.0, "donor_device": "cpu",
                       "expert_mode_allocations": allocation, "keep_loaded": keep}}


def mappings(env):
    return {**nodes.NODE_CLASS_MAPPINGS, **env.classes}


def native_unet(env, role="unet_a"):
    return nodes.UNETLoader().load_unet(env.names[role])[0]


def run(model):
    return nodes.RunModel().run(model)[0]


def test_node_list_has_broker_and_device_loaders(comfy_env):
    names = set(comfy_env.classes)
    for stock in ("UNETLoader", "CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader",
                  "QuadrupleCLIPLoader", "VAELoader", "CheckpointLoaderSimple", "ControlNetLoader"):
        assert "Distorch" + stock in names
        assert "Distorch" + stock + "Device" in names
    inputs = comfy_env.classes["DistorchUNETLoader"].INPUT_TYPES()
    assert inputs["optional"]["compute_device"][0] == ["sim:0", "sim:1", "cpu"]
    for name in ("virtual_vram_gb", "donor_device", "expert_mode_allocations", "keep_loaded"):
        assert name in inputs["optional"]
    clip_inputs = comfy_env.classes["DistorchCLIPLoader"].INPUT_TYPES()
    assert "device" not in clip_inputs.get("optional", {})


def test_parameters_are_broker_tensors_and_outputs_match_native(comfy_env):
    env = comfy_env
    prompt = {"1": unet_node(env, allocation="sim:0,30%;sim:1,30%;cpu,*"), "2": {
        "class_type": "RunModel", "inputs": {"model": ["1", 0]}}}
    ex = PromptExecutor(mappings(env))
    out = ex.execute(prompt, "2")[0]
    patcher = ex.execute(prompt, "1")[0]
    loaded = env.client.live[0]
    broker_ptrs = {t.data_ptr() for t in loaded.tensors.values()}
    for key, p in patcher.model.named_parameters():
        assert p.data_ptr() in broker_ptrs, key
    # placement: off-compute castable modules are cast at forward; the raw
    # parameter ComfyUI cannot stream was pinned to compute by the skeleton pass
    assert loaded.tensor_devices["pos_embed"] == "sim:0"
    assert "pos_embed" in env.client.loads[0]["pins"]
    off = {n for n, d in loaded.tensor_devices.items() if d != "sim:0"}
    assert off
    for name in off:
        module = patcher.model.get_submodule(name.rsplit(".", 1)[0])
        assert module.comfy_cast_weights is True
    assert torch.equal(out, run(native_unet(env)))


def test_clip_key_conversion_is_client_owned_and_logged(comfy_env, caplog):
    env = comfy_env
    cls = env.classes["DistorchCLIPLoader"]
    with caplog.at_level(logging.INFO):
        clip = cls().distorch_load(clip_name=env.names["te_a"], type="stable_diffusion",
                                   compute_device="sim:0", keep_loaded=False)[0]
    encoder = clip.cond_stage_model[0]
    loaded = env.client.live[0]
    ptrs = {t.data_ptr() for t in loaded.tensors.values()}
    assert encoder.embed.weight.data_ptr() in ptrs
    assert encoder.qkv.weight.data_ptr() not in ptrs  # torch.cat in the loader
    assert "embed" in env.client.loads[0]["pins"]     # nn.Embedding: not streamable
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "client-owned 768 B in 1 tensor(s)" in text
    native = nodes.CLIPLoader().load_clip(env.names["te_a"])[0]
    tokens = torch.tensor([[1, 2, 3, 4]])
    assert torch.equal(clip.encode(tokens), native.encode(tokens))


def test_checkpoint_vae_controlnet_and_multi_clip(comfy_env):
    env = comfy_env
    c = env.classes
    model, clip, vae = c["DistorchCheckpointLoaderSimple"]().distorch_load(
        ckpt_name=env.names["ckpt"], compute_device="sim:0")
    assert len(env.client.loads) == 1  # one file, one broker model for all three
    for patcher in (model, clip.patcher, vae.patcher):
        assert type(patcher).__name__ == "DistorchModelPatcher"
    vae2 = c["DistorchVAELoader"]().distorch_load(vae_name=env.names["vae"], compute_device="sim:0")[0]
    z = torch.ones(1, 4, 2, 2)
    assert torch.equal(vae2.decode(z), nodes.VAELoader().load_vae(env.names["vae"])[0].decode(z))
    cnet = c["DistorchControlNetLoader"]().distorch_load(control_net_name=env.names["cnet"],
                                                         compute_device="sim:0")[0]
    assert type(cnet.control_model_wrapped).__name__ == "DistorchModelPatcher"
    dual = c["DistorchDualCLIPLoader"]().distorch_load(clip_name1=env.names["te_a"],
                                                       clip_name2=env.names["te_b"], type="flux")[0]
    assert len(dual.cond_stage_model) == 2
    assert len(env.client.loads) == 5


def test_verification_matrix_free_flow(comfy_env):
    """DESIGN.md §6: A(false) B(true) C(true) -> /free: A gone, B and C kept and
    still usable after the executor reset, without a reload."""
    env = comfy_env
    prompt = {"A": unet_node(env, "unet_a", keep=False), "B": unet_node(env, "unet_b", keep=True),
              "C": unet_node(env, "unet_c", keep=True)}
    for n in ("A", "B", "C"):
        prompt["run" + n] = {"class_type": "RunModel", "inputs": {"model": [n, 0]}}
    ex = PromptExecutor(mappings(env))
    before = {n: ex.execute(prompt, "run" + n)[0] for n in "ABC"}
    kept = {n: ex.execute(prompt, n)[0] for n in "BC"}
    a_model = ex.execute(prompt, "A")[0].model
    assert len(mm.current_loaded_models) == 3
    mm.CALLS.clear()
    free_flow(ex, unload_models=True, free_memory=True)
    assert env.client.frees == [(True, False)]
    assert [m.model_id for m in env.client.live if m.released or m.closed] == [env.client.live[0].model_id]
    assert all(p.device.type == "meta" for p in a_model.parameters())  # A's memory is unmapped here
    assert len(mm.current_loaded_models) == 2
    calls = [c for c in mm.CALLS if c in ("unload_all_models", "soft_empty_cache")]
    assert calls[-1] == "soft_empty_cache"
    loads_before = len(env.client.loads)
    ex.executed.clear()
    after = {n: ex.execute(prompt, "run" + n)[0] for n in "ABC"}
    assert {n: ex.execute(prompt, n)[0] for n in "BC"} == kept  # same objects: no reload
    assert len(env.client.loads) == loads_before + 1              # only A is loaded again
    for n in "ABC":
        assert torch.equal(before[n], after[n])


def test_all_kept_free_is_a_strict_noop(comfy_env):
    env = comfy_env
    prompt = {"D": unet_node(env, "unet_d", keep=True), "E": unet_node(env, "unet_e", keep=True),
              "runD": {"class_type": "RunModel", "inputs": {"model": ["D", 0]}}}
    ex = PromptExecutor(mappings(env))
    ex.execute(prompt, "runD")
    ex.execute(prompt, "E")
    mm.CALLS.clear()
    soft_before = env.client.soft
    mm.unload_all_models()
    assert env.client.frees == []
    assert not any(isinstance(c, tuple) and c[0] == "free_memory" for c in mm.CALLS)
    free_flow(ex, unload_models=True)
    assert env.client.frees == []
    assert env.client.soft == soft_before + 1  # caches are still trimmed
    assert all(not m.released for m in env.client.live)


def test_keep_flag_change_reuses_the_model(comfy_env):
    env = comfy_env
    ex = PromptExecutor(mappings(env))
    first = ex.execute({"1": unet_node(env, keep=False)}, "1")[0]
    second = ex.execute({"1": unet_node(env, keep=True)}, "1")[0]
    assert first is second
    assert env.client.keep_calls == [(env.client.live[0].model_id, True)]
    assert len(env.client.loads) == 1


def test_unkept_model_released_when_comfy_drops_it(comfy_env):
    from distorch.comfy import registry
    env = comfy_env
    ex = PromptExecutor(mappings(env))
    ex.execute({"1": unet_node(env, keep=False)}, "1")
    ex.reset()
    gc.collect()
    registry.REGISTRY.drain()
    assert env.client.released == [env.client.live[0].model_id]


def test_drain_waits_for_a_release_in_progress():
    """drain() returned once the queue was empty, while the worker was still in the
    broker call of the release it had taken off it; tests slept around it."""
    from distorch.comfy import registry
    taken = threading.Event()

    class SlowLoaded:
        released = False

        def release(self):
            taken.set()
            time.sleep(0.3)  # a slow broker Release
            self.released = True

    class Patcher:
        def __init__(self):
            self.model = type("Model", (), {})()
            self.load_device = "cpu"

    reg = registry.Registry()
    loaded = SlowLoaded()
    outputs = (Patcher(),)
    reg.register("k", "slow", [("slow.safetensors", loaded)], outputs, keep=False, node_id=None,
                 input_hash="h")
    del outputs
    gc.collect()
    assert taken.wait(5), "the model died but no release started"
    reg.drain()
    assert loaded.released
    assert reg.entries() == []


def test_kept_model_survives_a_prompt_that_reuses_its_node_id(comfy_env):
    """ComfyUI numbers each workflow's nodes from 1: a later prompt whose node "1" is
    another loader must not release the kept UNet (found in the real ComfyUI 0.33 run,
    run_real.sh flow kept_unused)."""
    from distorch.comfy import registry
    env = comfy_env
    ex = PromptExecutor(mappings(env))
    kept = ex.execute({"1": unet_node(env, keep=True)}, "1")[0]
    kept_id = env.client.live[0].model_id
    del kept
    ex.execute({"1": unet_node(env, role="unet_b", keep=False)}, "1")
    ex.reset()
    gc.collect()
    registry.REGISTRY.drain()  # a wrong release would run on the registry's worker thread
    assert kept_id not in env.client.released
    ex.execute({"1": unet_node(env, keep=True)}, "1")
    assert [os.path.basename(load["path"]) for load in env.client.loads] == \
        [env.names["unet_a"], env.names["unet_b"]]  # the kept unet_a was reused, not reloaded


def test_setup_registers_its_connect_callback_once(comfy_env):
    """setup() after teardown() (and again while installed) added one more
    on_connect callback each time: every connection then registered one more
    evicted handler, and one eviction was handled that many times."""
    import distorch.comfy as dc
    from distorch.comfy import session

    class Connected:
        def __init__(self):
            self.evicted_handlers = []

        def on_evicted(self, callback):
            self.evicted_handlers.append(callback)

    for _ in range(3):
        dc.teardown()
        dc.setup(nodes.NODE_CLASS_MAPPINGS)
        dc.setup(nodes.NODE_CLASS_MAPPINGS)
    connected = Connected()
    session.set_client_factory(lambda: connected)
    assert session.client() is connected
    assert len(connected.evicted_handlers) == 1
    dc.teardown()
    session.set_client_factory(lambda: Connected())
    assert session.client().evicted_handlers == []  # teardown() unregistered it


def test_lora_strength_change_repatches_only_affected_weights(comfy_env, caplog):
    env = comfy_env
    c = env.classes
    model = c["DistorchUNETLoader"]().distorch_load(unet_name=env.names["unet_a"], compute_device="sim:0",
                                                    expert_mode_allocations="sim:0,50%;cpu,*")[0]
    base = {k: p.detach().clone() for k, p in model.model.named_parameters()}
    ptr = {k: p.data_ptr() for k, p in model.model.named_parameters()}
    lora = nodes.LoraLoaderModelOnly()
    m1 = lora.load_lora_model_only(model, env.names["lora1"], 1.0)[0]
    m2 = lora.load_lora_model_only(m1, env.names["lora2"], 1.0)[0]
    out_a = run(m2)
    m2b = lora.load_lora_model_only(m1, env.names["lora2"], 0.5)[0]
    with caplog.at_level(logging.INFO):
        out_b = run(m2b)
    msg = [r.getMessage() for r in caplog.records if "weight patches" in r.getMessage()]
    assert msg and "1 re-patched, 0 restored to the shared base, 1 unchanged" in msg[-1]
    assert not torch.equal(out_a, out_b)
    # the shared base was never written
    loaded = env.client.live[0]
    for k, t in base.items():
        assert torch.equal(loaded.tensors[k], t), k
    # same result as the stock path with the same patches
    native = native_unet(env)
    n1 = lora.load_lora_model_only(native, env.names["lora1"], 1.0)[0]
    n2 = lora.load_lora_model_only(n1, env.names["lora2"], 0.5)[0]
    assert torch.allclose(out_b, run(n2), atol=1e-6)
    # unloading restores the broker base weights in place
    mm.unload_all_models()
    for k, p in model.model.named_parameters():
        assert p.data_ptr() == ptr[k] or p.device.type == "meta", k


def test_no_daemon_loads_the_stock_way_only_without_an_allocation(tmp_path, monkeypatch, caplog):
    """Without a daemon a node with no allocation loads the stock way on its
    device (one warning); one with an allocation fails and says how to start
    distorchd (never a stock load that drops the allocation)."""
    import folder_paths
    import distorch.comfy as dc
    from distorch.comfy import session
    import tiny_models
    names = tiny_models.write_all(str(tmp_path))
    monkeypatch.setattr(folder_paths, "MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("DISTORCH_SOCKET", str(tmp_path / "none.sock"))
    session.set_client_factory(lambda: None)
    try:
        with caplog.at_level(logging.WARNING):
            classes, _ = dc.setup(nodes.NODE_CLASS_MAPPINGS)
            node = classes["DistorchUNETLoader"]()
            model = node.distorch_load(unet_name=names["unet_a"], compute_device="cpu")[0]
            node.distorch_load(unet_name=names["unet_b"], compute_device="cpu")
            with pytest.raises(session.BrokerUnavailable) as failed:
                node.distorch_load(unet_name=names["unet_a"], compute_device="cpu",
                                   expert_mode_allocations="sim:0,50%;cpu,*")
            with pytest.raises(session.BrokerUnavailable):
                node.distorch_load(unet_name=names["unet_a"], compute_device="sim:0",
                                   virtual_vram_gb=1.0, donor_device="cpu")
        warnings = [r for r in caplog.records if "distorchd is not running" in r.getMessage()]
        assert len(warnings) == 1
        assert "distorchd --socket " + str(tmp_path / "none.sock") in warnings[0].getMessage()
        text = str(failed.value)
        assert "asks for the allocation 'sim:0,50%;cpu,*'" in text
        assert str(tmp_path / "none.sock") in text and "distorchd --socket" in text
        assert "not loaded the stock way" in text
        assert type(model).__name__ == "ModelPatcher"
        assert torch.equal(run(model), run(native_unet(type("E", (), {"names": names}))))
    finally:
        dc.teardown()
        session.set_client_factory(None)


def test_dynamic_vram_is_detected_and_explained_once(comfy_env, caplog, monkeypatch):
    import sys
    import types
    import comfy.model_patcher
    from distorch.comfy import dynamic_vram
    env = comfy_env
    memory_management = types.ModuleType("comfy.memory_management")
    memory_management.aimdo_enabled = True
    monkeypatch.setitem(sys.modules, "comfy.memory_management", memory_management)
    monkeypatch.setattr(dynamic_vram, "_told", False)

    class ModelPatcherDynamic(comfy.model_patcher.ModelPatcher):
        def is_dynamic(self):
            return True
    monkeypatch.setattr(comfy.model_patcher, "CoreModelPatcher", ModelPatcherDynamic)
    with caplog.at_level(logging.WARNING):
        for role in ("unet_a", "unet_b"):
            model = env.classes["DistorchUNETLoader"]().distorch_load(unet_name=env.names[role],
                                                                      compute_device="sim:0")[0]
            assert model.is_dynamic() is False
    told = [r for r in caplog.records if "DynamicVRAM" in r.getMessage()]
    assert len(told) == 1
