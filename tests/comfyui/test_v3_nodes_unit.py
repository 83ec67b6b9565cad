"""distorch twins of V3 stock loaders (ComfyUI 0.33.0's TripleCLIPLoader and
QuadrupleCLIPLoader are io.ComfyNode classes) on the fake ComfyUI, whose
comfy_api, /object_info (server.py), prompt validation and V3 execution
(execution.py) mirror 0.33.0."""


import pytest
import torch

import nodes
import server
from comfy_api.internal import _ComfyNodeInternal
from comfy_api.latest import io
from execution import PromptExecutor, validate_inputs
from main import free_flow

BROKER_INPUTS = ("compute_device", "virtual_vram_gb", "donor_device", "expert_mode_allocations",
                 "keep_loaded", "own_placement")


def mappings(env):
    return {**nodes.NODE_CLASS_MAPPINGS, **env.classes}


def triple_node(env, keep=False, compute="sim:0", **extra):
    inputs = {"clip_name1": env.names["te_a"], "clip_name2": env.names["te_b"],
              "clip_name3": env.names["te_a"], "compute_device": compute, "virtual_vram_gb": 0.0,
              "donor_device": "cpu", "expert_mode_allocations": "", "keep_loaded": keep}
    inputs.update(extra)
    return {"class_type": "DistorchTripleCLIPLoader", "inputs": inputs}


def test_v3_stock_loaders_get_v3_twins_and_v1_stock_loaders_v1_twins(comfy_env):
    classes = comfy_env.classes
    for stock in ("TripleCLIPLoader", "QuadrupleCLIPLoader"):
        assert issubclass(nodes.NODE_CLASS_MAPPINGS[stock], io.ComfyNode)
        for twin in ("Distorch" + stock, "Distorch" + stock + "Device"):
            assert issubclass(classes[twin], io.ComfyNode), twin
            assert classes[twin].GET_SCHEMA().node_id == twin
    for stock in ("UNETLoader", "CLIPLoader", "DualCLIPLoader", "VAELoader",
                  "CheckpointLoaderSimple", "ControlNetLoader"):
        assert not issubclass(classes["Distorch" + stock], _ComfyNodeInternal), stock
    assert comfy_env.titles["DistorchTripleCLIPLoader"] == "Load CLIP (Triple) (distorch)"
    assert comfy_env.titles["DistorchQuadrupleCLIPLoaderDevice"] == "Load CLIP (Quadruple) (device)"


def test_object_info_shows_the_broker_inputs_with_the_v1_defaults(comfy_env):
    info = server.object_info(mappings(comfy_env))
    twin = info["DistorchTripleCLIPLoader"]
    assert twin["name"] == "DistorchTripleCLIPLoader"
    assert twin["display_name"] == "Load CLIP (Triple) (distorch)"
    assert twin["category"] == "distorch"
    assert twin["output"] == ["CLIP"]
    assert list(twin["input"]["required"]) == ["clip_name1", "clip_name2", "clip_name3"]
    assert twin["input"]["hidden"] == {"unique_id": ("UNIQUE_ID",)}
    optional = twin["input"]["optional"]
    assert list(optional) == list(BROKER_INPUTS)
    assert optional["compute_device"] == ("COMBO", {"default": "sim:0", "multiselect": False,
                                                    "options": ["sim:0", "sim:1", "cpu"]})
    # the same widgets, defaults and limits as the V1 twins of V1 stock loaders
    v1 = info["DistorchCLIPLoader"]["input"]["optional"]
    assert optional["compute_device"][1]["options"] == v1["compute_device"][0]
    assert optional["donor_device"][1]["default"] == v1["donor_device"][1]["default"]
    for name in ("virtual_vram_gb", "expert_mode_allocations", "keep_loaded", "own_placement"):
        assert optional[name][0] == v1[name][0], name
        for key, value in v1[name][1].items():
            assert optional[name][1][key] == value, (name, key)

    device = info["DistorchTripleCLIPLoaderDevice"]
    assert device["category"] == "distorch/device"
    assert device["display_name"] == "Load CLIP (Triple) (device)"
    assert list(device["input"]["optional"]) == ["device"]
    assert device["input"]["optional"]["device"][1]["options"] == ["cpu"]  # no sim: for stock loads
    quad = info["DistorchQuadrupleCLIPLoader"]["input"]
    assert list(quad["required"]) == [f"clip_name{i}" for i in range(1, 5)]
    assert list(quad["optional"]) == list(BROKER_INPUTS)


def test_a_v1_subclass_of_a_v3_loader_hides_its_inputs(comfy_env):
    """Why the twins are V3: ComfyUI builds a V3 class's /object_info from
    define_schema, so the old V1-style twin showed the stock node instead."""
    from distorch.comfy import nodes as dnodes
    stock = nodes.NODE_CLASS_MAPPINGS["TripleCLIPLoader"]
    old_style = dnodes.make_broker_node(stock, "clip", "TripleCLIPLoader")
    info = server.node_info("Old", {"Old": old_style})
    assert info["name"] == "TripleCLIPLoader"
    assert "optional" not in info["input"]
    # and its V1-style combos (a list as the type) break V3 input parsing
    prompt = {"1": dict(triple_node(comfy_env), class_type="Old")}
    with pytest.raises(TypeError, match="unhashable"):
        validate_inputs(prompt, "1", {"Old": old_style})


def test_twins_do_not_inherit_the_stock_schema_caches(comfy_env):
    stock = nodes.NODE_CLASS_MAPPINGS["TripleCLIPLoader"]
    assert stock.CATEGORY == "model/loaders"  # cached when ComfyUI registered it
    twin = comfy_env.classes["DistorchTripleCLIPLoader"]
    assert twin.CATEGORY == "distorch"
    assert twin.RETURN_TYPES == ["CLIP"]
    assert comfy_env.classes["DistorchTripleCLIPLoaderDevice"].CATEGORY == "distorch/device"


def test_prompt_validates_and_runs_on_broker_tensors(comfy_env):
    from distorch.comfy import registry
    env = comfy_env
    prompt = {"7": triple_node(env, keep=True, virtual_vram_gb="0")}  # the frontend may send text
    ok, errors = validate_inputs(prompt, "7", mappings(env))
    assert ok, errors
    assert prompt["7"]["inputs"]["virtual_vram_gb"] == 0.0
    clip = PromptExecutor(mappings(env)).execute(prompt, "7")[0]
    assert len(clip.cond_stage_model) == 3
    assert len(env.client.loads) == 3  # one broker load per file the stock loader opened
    ptrs = {t.data_ptr() for m in env.client.live for t in m.tensors.values()}
    for encoder in clip.cond_stage_model:
        assert encoder.embed.weight.data_ptr() in ptrs
    assert type(clip.patcher).__name__ == "DistorchModelPatcher"
    entry, = registry.REGISTRY.entries()
    assert entry.holders == {"7"}  # unique_id reached run_broker through cls.hidden
    assert entry.keep is True
    stock = nodes.NODE_CLASS_MAPPINGS["TripleCLIPLoader"]
    native = stock.execute(env.names["te_a"], env.names["te_b"], env.names["te_a"])[0]
    tokens = torch.tensor([[1, 2, 3, 4]])
    assert torch.equal(clip.encode(tokens), native.encode(tokens))


@pytest.mark.parametrize("name,value,error", [
    ("compute_device", "cuda:7", "value_not_in_list"),
    ("virtual_vram_gb", 2048, "value_bigger_than_max"),
    ("virtual_vram_gb", -1, "value_smaller_than_min"),
    ("clip_name3", "missing.safetensors", "value_not_in_list"),
])
def test_bad_values_fail_validation(comfy_env, name, value, error):
    prompt = {"1": triple_node(comfy_env, **{name: value})}
    ok, errors = validate_inputs(prompt, "1", mappings(comfy_env))
    assert not ok
    assert [e["type"] for e in errors] == [error]
    assert errors[0]["details"].startswith(name)


def test_same_inputs_on_another_node_reuse_the_loaded_model(comfy_env):
    env = comfy_env
    ex = PromptExecutor(mappings(env))
    prompt = {"1": triple_node(env, keep=True), "2": triple_node(env, keep=True)}
    first = ex.execute(prompt, "1")[0]
    second = ex.execute(prompt, "2")[0]  # the reuse path returns a tuple: still a NodeOutput
    assert first is second
    assert len(env.client.loads) == 3


def test_fingerprint_changes_when_free_ejects_the_model(comfy_env):
    env = comfy_env
    ex = PromptExecutor(mappings(env))
    prompt = {"1": triple_node(env, keep=False)}
    ex.execute(prompt, "1")
    before = ex._signature("1", prompt)
    assert ex._signature("1", prompt) == before  # unchanged inputs: ComfyUI reuses its cache
    free_flow(ex, unload_models=True)             # no executor reset: only the fingerprint moves
    assert env.client.frees == [(True, False)]
    assert ex._signature("1", prompt) != before
    ex.execute(prompt, "1")
    assert ex.executed == ["1", "1"]
    assert len(env.client.loads) == 6


def test_device_twin_loads_the_stock_way_on_its_device(comfy_env):
    env = comfy_env
    prompt = {"1": {"class_type": "DistorchQuadrupleCLIPLoaderDevice",
                    "inputs": {**{f"clip_name{i}": env.names["te_a"] for i in range(1, 5)},
                               "device": "cpu"}}}
    ok, errors = validate_inputs(prompt, "1", mappings(env))
    assert ok, errors
    clip = PromptExecutor(mappings(env)).execute(prompt, "1")[0]
    assert len(clip.cond_stage_model) == 4
    assert clip.patcher.load_device == torch.device("cpu")
    assert env.client.loads == []


def test_node_class_mappings_register_v3_twins_under_their_names(comfy_env, monkeypatch, tmp_path):
    """0.33.0 load_custom_node takes V3 classes from NODE_CLASS_MAPPINGS as
    they are; /object_info then names them by their schema's node_id."""
    import asyncio
    monkeypatch.setattr(nodes, "NODE_CLASS_MAPPINGS", dict(nodes.NODE_CLASS_MAPPINGS))
    pack = tmp_path / "custom_nodes" / "distorch"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(
        "from distorch.comfy import setup\n"
        "NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = setup()\n")
    assert asyncio.run(nodes.load_custom_node(str(pack)))
    info = server.node_info("DistorchTripleCLIPLoader")
    assert info["name"] == "DistorchTripleCLIPLoader"
    assert info["python_module"] == "custom_nodes.distorch"
    assert "compute_device" in info["input"]["optional"]


def test_without_comfy_api_no_loader_is_v3(monkeypatch):
    import sys
    from distorch.comfy import v3_nodes
    monkeypatch.setitem(sys.modules, "comfy_api.internal", None)
    assert v3_nodes.is_v3(nodes.NODE_CLASS_MAPPINGS["TripleCLIPLoader"]) is False
