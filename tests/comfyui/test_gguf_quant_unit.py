"""Quantised GGUF models (Q8_0, Q4_K, Q4_0) through DistorchUnetLoaderGGUF on
the fake ComfyUI and the ComfyUI-GGUF stand-in (fake_gguf/), with a stub
broker serving the file's bytes as distorchd does (gguf_fixture.py).

The bug this guards: a quantised GGMLTensor's `.shape` is its logical shape
([320, 1280] for a Q8_0 matrix) while its storage is [320, 1360] bytes, and
reshaping the broker's bytes to `.shape` failed with "shape '[320, 1280]' is
invalid for input of size 435200"."""

import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import gguf_fixture  # noqa: F401  (puts fake_gguf on sys.path first)
import gguf
import make_model
from gguf_fixture import GgufStubClient, broker_tensors, file_tensor_bytes, tensor_sha256

import comfy.model_management as mm
import folder_paths
import nodes
from execution import PromptExecutor

Q = gguf.GGMLQuantizationType


@pytest.fixture
def gguf_env(tmp_path, monkeypatch):
    """The fake ComfyUI with the ComfyUI-GGUF stand-in loaded before
    distorch, a quantised tiny UNet in its models folder, a GGUF-aware stub."""
    import comfyui_gguf
    import distorch.comfy as dc
    from distorch.comfy import registry, session

    for name, cls in comfyui_gguf.NODE_CLASS_MAPPINGS.items():
        monkeypatch.setitem(nodes.NODE_CLASS_MAPPINGS, name, cls)
    tensors = gguf_fixture.write_quant_unet(str(tmp_path / "q.gguf"))
    monkeypatch.setattr(folder_paths, "MODELS_DIR", str(tmp_path))
    client = GgufStubClient()
    session.set_client_factory(lambda: client)
    registry.REGISTRY.__init__()
    mm.current_loaded_models.clear()
    classes, _ = dc.setup(nodes.NODE_CLASS_MAPPINGS)
    yield SimpleNamespace(client=client, classes=classes, dir=str(tmp_path), name="q.gguf",
                          tensors=tensors, gguf_nodes=comfyui_gguf.nodes)
    dc.teardown()
    session.set_client_factory(None)
    mm.current_loaded_models.clear()
    registry.REGISTRY.__init__()


def broker_node(name, class_type="DistorchUnetLoaderGGUF", **extra):
    inputs = {"unet_name": name, "compute_device": "sim:0", "virtual_vram_gb": 0.0,
              "donor_device": "cpu", "expert_mode_allocations": "", "keep_loaded": False}
    inputs.update(extra)
    return {"class_type": class_type, "inputs": inputs}


def run_prompt(env, loader):
    ex = PromptExecutor({**nodes.NODE_CLASS_MAPPINGS, **env.classes})
    prompt = {"1": loader, "2": {"class_type": "RunModel", "inputs": {"model": ["1", 0]}}}
    return ex.execute(prompt, "1")[0], ex.execute(prompt, "2")[0]


def test_rebind_views_the_broker_bytes_in_their_storage_shape(tmp_path):
    """The reported case: a [320, 1280] Q8_0 matrix (435200 bytes)."""
    from comfyui_gguf.loader import gguf_sd_loader
    from comfyui_gguf.dequant import dequantize_tensor
    from distorch.comfy import gguf as dgguf

    rng = np.random.default_rng(3)
    path = str(tmp_path / "m.gguf")
    make_model.write_gguf_arrays(path, {
        "model.diffusion_model.img_in.weight": ("Q8_0", rng.standard_normal((320, 1280))),
        "model.diffusion_model.img_in.bias": ("F32", rng.standard_normal(320)),
        "model.diffusion_model.txt_in.weight": ("Q4_K", rng.standard_normal((64, 512)))},
        {"general.architecture": "flux"})
    sd = gguf_sd_loader(path)
    stock = {k: dequantize_tensor(v, torch.float32) for k, v in sd.items()}
    patches_before = sd["img_in.weight"].patches
    arena, raw = broker_tensors(path)
    assert raw["model.diffusion_model.img_in.weight"].shape == (435200,)  # flat, as adopt.py gives

    assert dgguf.rebind(sd, SimpleNamespace(tensors=raw)) == (3, 0)
    w = sd["img_in.weight"]
    assert type(w).__name__ == "GGMLTensor" and w.tensor_type == Q.Q8_0
    assert w.shape == torch.Size([320, 1280]) and w.size() == torch.Size([320, 1360])
    assert w.dtype == torch.uint8 and w.data_ptr() == raw["model.diffusion_model.img_in.weight"].data_ptr()
    assert w.is_largest_weight                      # ComfyUI-GGUF's VRAM estimate needs it
    assert w.patches == [] and w.patches is not patches_before
    assert sd["txt_in.weight"].size() == torch.Size([64, 2 * 144])
    for k, v in sd.items():
        assert torch.equal(dequantize_tensor(v, torch.float32), stock[k]), k
    del arena


@pytest.mark.parametrize("class_type,extra", [
    ("DistorchUnetLoaderGGUF", {}),
    ("DistorchUnetLoaderGGUFAdvanced", {"dequant_dtype": "float32", "patch_dtype": "default",
                                        "patch_on_device": False})])
def test_quantised_unet_through_the_broker_computes_like_the_stock_loader(gguf_env, class_type,
                                                                          extra):
    env = gguf_env
    patcher, out = run_prompt(env, broker_node(env.name, class_type, **extra))
    stock_patcher = env.gguf_nodes.UnetLoaderGGUF().load_unet(env.name)[0]
    stock_out = nodes.RunModel().run(stock_patcher)[0]
    assert torch.equal(out, stock_out)

    (loaded,) = env.client.live
    assert not loaded.shared
    _, arena, _ = env.client.arenas[loaded.path]
    base = torch.frombuffer(arena, dtype=torch.uint8).data_ptr()
    in_arena = lambda t: base <= t.data_ptr() < base + len(arena)  # noqa: E731
    params = dict(patcher.model.named_parameters())
    assert all(in_arena(p) for p in params.values()), [k for k, p in params.items() if not in_arena(p)]

    # Still quantised in broker memory: uint8 GGMLTensors with ComfyUI-GGUF's
    # tensor_type/tensor_shape, holding exactly the file's blocks.
    file_bytes = file_tensor_bytes(os.path.join(env.dir, env.name))
    quantised = {k: p for k, p in params.items() if getattr(p, "tensor_type", None) not in
                 (None, Q.F32, Q.F16)}
    assert sorted(quantised) == ["blocks.0.proj.weight", "blocks.1.proj.weight",
                                 "blocks.2.proj.weight", "out.weight"]
    for key, p in quantised.items():
        qtype, array = env.tensors[key]
        assert type(p).__name__ == "GGMLTensor" and p.dtype == torch.uint8
        assert p.tensor_type == Q[qtype] and tuple(p.shape) == array.shape
        assert tensor_sha256(p) == tensor_sha256(torch.frombuffer(bytearray(file_bytes[key]),
                                                                  dtype=torch.uint8))
    assert sum(p.numel() for p in quantised.values()) == sum(len(file_bytes[k]) for k in quantised)
    assert patcher.model.blocks[0].proj.largest_layer   # is_largest_weight survived the rebind


def test_second_load_attaches_to_the_same_quantised_bytes(gguf_env):
    env = gguf_env
    first, out1 = run_prompt(env, broker_node(env.name, keep_loaded=True))
    second, out2 = run_prompt(env, broker_node(env.name, "DistorchUnetLoaderGGUFAdvanced",
                                               dequant_dtype="default", patch_dtype="default",
                                               patch_on_device=False))
    assert torch.equal(out1, out2)
    assert [m.shared for m in env.client.live] == [False, True]
    w1, w2 = first.model.blocks[1].proj.weight, second.model.blocks[1].proj.weight
    assert w1.tensor_type == w2.tensor_type == Q.Q4_K
    assert w1.data_ptr() == w2.data_ptr()


# ------------------------------------------------------------ block formats


def _dequant(qtype, raw: bytes, shape):
    from comfyui_gguf.dequant import dequantize
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    return dequantize(data.reshape(1, -1), qtype, torch.Size(shape), torch.float32)


def test_dequantisers_decode_hand_made_blocks():
    # Q8_0: d = 0.5, qs = -16..15  -> x = 0.5 * q
    q8 = np.float16(0.5).tobytes() + np.arange(-16, 16, dtype=np.int8).tobytes()
    assert _dequant(Q.Q8_0, q8, (32,)).tolist() == [0.5 * q for q in range(-16, 16)]
    # Q4_0: d = 2, qs[j] = j | (15 - j) << 4 -> x[j] = 2 (j - 8), x[j + 16] = 2 (7 - j)
    q4 = np.float16(2).tobytes() + bytes(j | (15 - j) << 4 for j in range(16))
    want = [2.0 * (j - 8) for j in range(16)] + [2.0 * (7 - j) for j in range(16)]
    assert _dequant(Q.Q4_0, q4, (32,)).tolist() == want
    # Q4_K: d = 1, dmin = 0.5; scale/min bytes spelled out for ggml's
    # get_scale_min_k4: sub-blocks 0-3 (sc, m) = (1, 5) (2, 6) (3, 7) (4, 8);
    # 4-7 from bytes 8-11 plus the top bits of bytes 0-7: (1 + 16, 2) (3, 4 + 16)
    # (5, 6) (7, 8); qs = 0x5A: low nibble 10 (sub-blocks 0, 2, 4, 6), high 5.
    scales = bytes([1 | 1 << 6, 2, 3, 4, 5, 6 | 1 << 6, 7, 8, 0x21, 0x43, 0x65, 0x87])
    q4k = np.float16(1).tobytes() + np.float16(0.5).tobytes() + scales + bytes([0x5A]) * 128
    sc_m = [(1, 5), (2, 6), (3, 7), (4, 8), (17, 2), (3, 20), (5, 6), (7, 8)]
    want = [sc * (10 if s % 2 == 0 else 5) - 0.5 * m for s, (sc, m) in enumerate(sc_m)
            for _ in range(32)]
    assert _dequant(Q.Q4_K, q4k, (256,)).tolist() == want


@pytest.mark.parametrize("qtype,tolerance", [("Q8_0", 1 / 127), ("Q4_0", 1 / 7), ("Q4_K", 1 / 10)])
def test_our_quantisers_round_trip_through_the_dequantisers(qtype, tolerance):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 512)).astype(np.float32)
    x[0, :256] = 0                      # an all-zero block / super-block
    x[1, :32] = 0.25                    # a constant block
    raw = make_model.QUANTIZERS[qtype](x)
    assert len(raw) == make_model.TensorSpec("t", qtype, x.shape).nbytes
    y = _dequant(Q[qtype], raw, x.shape).numpy()
    assert np.all(y[0, :256] == 0)
    # Error per element against the range of its block (Q4: 16 levels).
    block = 256 if qtype == "Q4_K" else 32
    span = np.abs(x).reshape(-1, block).max(axis=1).repeat(block).reshape(x.shape)
    assert np.all(np.abs(y - x) <= tolerance * span + 1e-3), np.abs(y - x).max()


def test_random_fill_writes_decodable_blocks(tmp_path):
    path = str(tmp_path / "r.gguf")
    specs = [make_model.TensorSpec(n, t, (16, 512)) for n, t in
             (("a", "Q8_0"), ("b", "Q4_K"), ("c", "Q4_0"))]
    make_model.write_gguf(path, specs, make_model.RandomFill(7), {"general.architecture": "flux"})
    reader = gguf.GGUFReader(path)
    for t in reader.tensors:
        y = _dequant(t.tensor_type, np.ascontiguousarray(t.data).tobytes(), (16, 512))
        assert torch.isfinite(y).all() and 0.1 < float(y.std()) < 0.5, (t.name, float(y.std()))
