"""No ComfyUI path writes into broker memory (issue 9): saving (ModelSave,
CLIPSave, CheckpointSave), weight hooks (CreateHookLora -> SetClipHooks ->
encode; a sampler's model hooks, cached and not), and patch_weight_to_device
with inplace_update. The fake ComfyUI mirrors these paths of ComfyUI 0.33.0.

The broker tensors here are genuinely read-only: the stub client hands them out
from PROT_READ file mappings, as distorch.adopt maps the daemon's memfds, so a
write into them is a SIGSEGV that stops the run (pytest's faulthandler prints
where). Every result is compared with what stock ComfyUI gives for the same
graph on a model loaded the stock way."""

import inspect
import mmap
import os
import tempfile
import warnings

import numpy as np
import pytest
import torch

import comfy.hooks
import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import nodes
import tiny_models
from comfy_extras import nodes_hooks, nodes_model_merging
from make_model import write_safetensors
from stub_client import StubClient

SPLIT = "sim:0,50%;cpu,*"  # some modules on compute, some cast at forward


class ReadOnlyStubClient(StubClient):
    """StubClient whose broker tensors live in read-only shared file mappings."""

    def __init__(self, directory):
        super().__init__()
        self._dir = directory
        self._maps = []  # keeps every mapping alive as long as the client

    def _read_only(self, t):
        data = t.contiguous().numpy().tobytes()
        f = tempfile.TemporaryFile(dir=self._dir)
        f.write(data)
        f.flush()
        m = mmap.mmap(f.fileno(), len(data), access=mmap.ACCESS_READ)
        self._maps.append((f, m))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "buffer is not writable": that is the point
            return torch.frombuffer(m, dtype=t.dtype).reshape(t.shape)

    def load(self, path, *args, **kwargs):
        loaded = super().load(path, *args, **kwargs)
        if not loaded.shared:
            loaded.tensors = {n: self._read_only(t) for n, t in loaded.tensors.items()}
            for key, (model_id, _) in list(self.residencies.items()):
                if model_id == loaded.model_id:
                    self.residencies[key] = (model_id, loaded.tensors)
        return loaded


@pytest.fixture
def env(comfy_env, tmp_path, monkeypatch):
    from distorch.comfy import session
    client = ReadOnlyStubClient(str(tmp_path))
    session.set_client_factory(lambda: client)
    comfy_env.client = client
    monkeypatch.setattr(folder_paths, "OUTPUT_DIR", str(tmp_path / "output"))
    write_safetensors(os.path.join(comfy_env.dir, "clip_lora.safetensors"), clip_lora())
    write_safetensors(os.path.join(comfy_env.dir, "hook_lora.safetensors"),
                      {**tiny_models.lora(0, seed=20), **tiny_models.lora(2, seed=30)})
    return comfy_env


def clip_lora():
    """A LoRA for the fake text encoder: on a cast-at-forward op (proj), on
    the nn.Embedding ComfyUI cannot stream (embed), and on the client-owned
    concatenated qkv."""
    rng = np.random.default_rng(7)
    out = {}
    for key, (rows, cols) in {"0.proj.weight": (8, 24), "0.embed.weight": (16, 8), "0.qkv.weight": (24, 8)}.items():
        out[key + ".lora_up"] = (rng.standard_normal((rows, 2)) * 0.3).astype(np.float32)
        out[key + ".lora_down"] = (rng.standard_normal((2, cols)) * 0.3).astype(np.float32)
    return out


def same_memory(a, b):
    """a is (a Parameter over) the very memory of b."""
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.dtype == b.dtype


def assert_broker_untouched(env, sources):
    """Every broker tensor still holds its file's values."""
    for m in env.client.live:
        source = sources[os.path.basename(m.path)]
        for name, t in m.tensors.items():
            assert np.array_equal(t.numpy(), source[name]), (m.path, name)


def files(env):
    return {env.names[role]: getattr(tiny_models, kind)(*seed) for role, kind, seed in (
        ("unet_a", "unet", (1,)), ("te_a", "text_encoder", (2,)), ("ckpt", "checkpoint", ()))}


def unet(env, allocation=SPLIT):
    return env.classes["DistorchUNETLoader"]().distorch_load(
        unet_name=env.names["unet_a"], compute_device="sim:0", expert_mode_allocations=allocation)[0]


def clip(env, allocation=SPLIT):
    return env.classes["DistorchCLIPLoader"]().distorch_load(
        clip_name=env.names["te_a"], type="stable_diffusion", compute_device="sim:0",
        expert_mode_allocations=allocation)[0]


def saved(directory):
    """{file name: state dict} of every file a save node wrote."""
    out = {}
    for root, _, names in os.walk(directory):
        for name in names:
            out[os.path.relpath(os.path.join(root, name), directory)] = comfy.utils.load_torch_file(
                os.path.join(root, name))
    return out


def assert_same_files(got, want, exact=True):
    assert got.keys() == want.keys()
    for f in want:
        assert got[f].keys() == want[f].keys(), f
        for k in want[f]:
            same = torch.equal(got[f][k], want[f][k]) if exact else torch.allclose(got[f][k], want[f][k], atol=1e-6)
            assert same, (f, k)


def save_with(save, prefix):
    """Runs one save node with output in OUTPUT_DIR/<prefix>; returns its files."""
    out = os.path.join(folder_paths.OUTPUT_DIR, prefix)
    save(prefix + "/x")
    return saved(out)


def with_loras(model, strengths):
    m = model
    for role, strength in strengths:
        m = nodes.LoraLoaderModelOnly().load_lora_model_only(m, role + ".safetensors", strength)[0]
    return m


def test_patch_weight_to_device_has_comfyui_0_33_signature(env):
    ours = inspect.signature(type(unet(env)).patch_weight_to_device)
    stock = inspect.signature(comfy.model_patcher.ModelPatcher.patch_weight_to_device)
    assert list(ours.parameters) == list(stock.parameters)
    for name in ("device_to", "inplace_update", "return_weight", "force_cast"):
        assert ours.parameters[name].default == stock.parameters[name].default


def test_model_save_writes_the_source_tensors(env):
    model = unet(env)
    got = save_with(lambda p: nodes_model_merging.ModelSave().save(model, p), "broker")
    (only,) = got.values()
    source = tiny_models.unet(1)
    assert only.keys() == {"model.diffusion_model." + k for k in source}
    for k, v in source.items():
        assert np.array_equal(only["model.diffusion_model." + k].numpy(), v), k
    native = nodes.UNETLoader().load_unet(env.names["unet_a"])[0]
    assert_same_files(got, save_with(lambda p: nodes_model_merging.ModelSave().save(native, p), "stock"))
    assert_broker_untouched(env, files(env))


@pytest.mark.parametrize("strengths", [[("lora1", 1.0)], [("lora1", 0.7), ("lora2", -1.5)],
                                       [("lora1", 0.25), ("lora1", 0.25)]])
def test_model_save_with_lora_equals_stock(env, strengths):
    model = with_loras(unet(env), strengths)
    nodes.RunModel().run(model)  # loaded: patched copies and cast-at-forward patches in place
    got = save_with(lambda p: nodes_model_merging.ModelSave().save(model, p), "broker")
    native = with_loras(nodes.UNETLoader().load_unet(env.names["unet_a"])[0], strengths)
    assert_same_files(got, save_with(lambda p: nodes_model_merging.ModelSave().save(native, p), "stock"))
    assert_broker_untouched(env, files(env))


def test_return_weight_of_a_clone_with_other_patches_equals_stock(env):
    base = unet(env, allocation="")
    a, b = with_loras(base, [("lora1", 1.0)]), with_loras(base, [("lora1", 0.5)])
    nodes.RunModel().run(a)  # a's patched copies are the model's parameters now
    native = with_loras(nodes.UNETLoader().load_unet(env.names["unet_a"])[0], [("lora1", 0.5)])
    for key in ("blocks.1.proj.weight", "blocks.0.proj.weight", "pos_embed"):
        got = b.patch_weight_to_device(key, device_to=b.load_device, return_weight=True)
        want = native.patch_weight_to_device(key, device_to=native.load_device, return_weight=True)
        assert torch.equal(got, want), key
    assert_broker_untouched(env, files(env))


def test_clip_save_and_checkpoint_save_equal_stock(env):
    c = clip(env)
    got = save_with(lambda p: nodes_model_merging.CLIPSave().save(c, p), "broker_clip")
    native = nodes.CLIPLoader().load_clip(env.names["te_a"])[0]
    assert_same_files(got, save_with(lambda p: nodes_model_merging.CLIPSave().save(native, p), "stock_clip"))

    model, ckpt_clip, vae = env.classes["DistorchCheckpointLoaderSimple"]().distorch_load(
        ckpt_name=env.names["ckpt"], compute_device="sim:0", expert_mode_allocations=SPLIT)
    got = save_with(lambda p: nodes_model_merging.CheckpointSave().save(model, ckpt_clip, vae, p), "broker_ckpt")
    stock = nodes.CheckpointLoaderSimple().load_checkpoint(env.names["ckpt"])
    assert_same_files(got, save_with(lambda p: nodes_model_merging.CheckpointSave().save(*stock, p), "stock_ckpt"))
    assert_broker_untouched(env, files(env))


def hooked_clip(c, strength=1.0):
    hooks = nodes_hooks.CreateHookLora().create_hook("clip_lora.safetensors", 1.0, strength)[0]
    return nodes_hooks.SetClipHooks().apply_hooks(c, schedule_clip=False, apply_to_conds=True, hooks=hooks)[0]


TOKENS = torch.tensor([[1, 2, 3, 4, 15]])


@pytest.mark.parametrize("allocation", ["", SPLIT])
def test_hook_lora_on_clip_equals_stock_and_leaves_broker_memory_alone(env, allocation):
    c = clip(env, allocation)
    params = dict(c.patcher.model.named_parameters())
    plain = c.encode(TOKENS)
    h = hooked_clip(c)
    out = h.encode(TOKENS)  # load -> apply_hooks(forced_hooks) -> patch_hook_weight_to_device
    hooked = dict(h.patcher.model.named_parameters())
    for key in ("0.proj.weight", "0.embed.weight", "0.qkv.weight"):
        assert not same_memory(hooked[key], params[key]), key  # this process's own tensor
    assert same_memory(hooked["0.proj.bias"], params["0.proj.bias"])

    native = nodes.CLIPLoader().load_clip(env.names["te_a"])[0]
    native_plain = native.encode(TOKENS)
    assert torch.equal(out, hooked_clip(native).encode(TOKENS))
    assert not torch.equal(out, plain)

    # the unhooked CLIP again: the hooks come off and the broker Parameters
    # themselves are back
    assert torch.equal(c.encode(TOKENS), native_plain)
    for key, p in c.patcher.model.named_parameters():
        assert same_memory(p, params[key]), key
    assert_broker_untouched(env, files(env))


def model_hooks():
    lora = comfy.utils.load_torch_file(os.path.join(folder_paths.MODELS_DIR, "hook_lora.safetensors"))
    return comfy.hooks.create_hook_lora(lora, strength_model=0.8, strength_clip=1.0)


def step(patcher, hooks):
    """One sampling step's model call: 0.33.0 samplers.calc_cond_batch applies
    the cond's hooks (model.current_patcher.apply_hooks) before the call."""
    patcher.apply_hooks(hooks)
    x = torch.linspace(-1, 1, 2 * 4 * 5 * 5).reshape(2, 4, 5, 5)
    with torch.no_grad():
        return patcher.model(x)


def sampler_run(patcher, hooks):
    """What a sampler does with model hooks: register, load once, then steps."""
    patcher.register_all_hook_patches(hooks, comfy.hooks.create_target_dict(comfy.hooks.EnumWeightTarget.Model))
    mm.load_models_gpu([patcher])
    return step(patcher, hooks)


@pytest.mark.parametrize("mode", [comfy.hooks.EnumHookMode.MaxSpeed, comfy.hooks.EnumHookMode.MinVram])
def test_model_hooks_with_lora_cached_and_not_equal_stock(env, mode):
    base = unet(env)
    params = dict(base.model.named_parameters())
    outs = []
    for model in (base, nodes.UNETLoader().load_unet(env.names["unet_a"])[0]):
        m = with_loras(model, [("lora1", 0.6)]).clone()
        m.hook_mode = mode
        hooks = model_hooks()
        first = sampler_run(m, hooks)
        bare = step(m, None)           # a step without the hooked cond
        again = step(m, hooks)         # again: from the cache in MaxSpeed mode
        assert torch.equal(first, again)
        assert not torch.equal(first, bare)
        outs.append((first, bare))
        if model is base:
            assert (bool(m.cached_hook_patches) is (mode == comfy.hooks.EnumHookMode.MaxSpeed))
            mm.unload_all_models()
            for key, p in base.model.named_parameters():
                assert same_memory(p, params[key]) or p.device.type == "meta", key
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert_broker_untouched(env, files(env))


def test_patch_weight_to_device_in_place_request_makes_a_copy(env):
    model = with_loras(unet(env, allocation=""), [("lora1", 1.0)])
    params = dict(model.model.named_parameters())
    key = "blocks.1.proj.weight"
    model.weight_inplace_update = True
    model.patch_weight_to_device(key, device_to=model.load_device, inplace_update=True)
    assert not same_memory(model.model.blocks[1].proj.weight, params[key])
    native = with_loras(nodes.UNETLoader().load_unet(env.names["unet_a"])[0], [("lora1", 1.0)])
    native.patch_weight_to_device(key, device_to=native.load_device)
    assert torch.equal(model.model.blocks[1].proj.weight, native.model.blocks[1].proj.weight)
    assert model.patch_weight_to_device("blocks.0.proj.weight") is params["blocks.0.proj.weight"]
    model.unpatch_model()
    assert same_memory(model.model.blocks[1].proj.weight, params[key])
    assert_broker_untouched(env, files(env))


def test_clip_save_of_a_hooked_clip_equals_stock(env):
    """Stock CLIPSave loads the CLIP first, so its forced hooks are in the file."""
    c = hooked_clip(clip(env))
    got = save_with(lambda p: nodes_model_merging.CLIPSave().save(c, p), "broker")
    native = hooked_clip(nodes.CLIPLoader().load_clip(env.names["te_a"])[0])
    assert_same_files(got, save_with(lambda p: nodes_model_merging.CLIPSave().save(native, p), "stock"))
    assert_broker_untouched(env, files(env))
