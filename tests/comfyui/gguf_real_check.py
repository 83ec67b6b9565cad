#!/usr/bin/env python3
"""Checks distorch's GGUF path against the real thing (not run by CTest: it
needs python3-gguf, a ComfyUI checkout and a ComfyUI-GGUF checkout, which the
sid chroot of scripts/torch2-env.sh has):

    scripts/torch2-env.sh --release sid run env DISTORCHD=build/torch2-bin/distorchd \\
        python3 tests/comfyui/gguf_real_check.py /tmp/ComfyUI-033 /tmp/ComfyUI-GGUF

1. A file written with the real gguf package (GGUFWriter; Q8_0 and Q4_0 from
   gguf.quants.quantize, Q4_K from make_model's quantiser since gguf-py has
   none) loads through a real distorchd, and ComfyUI-GGUF's own
   gguf_sd_loader + dequantize_tensor give identical weights on the file
   (stock) and after distorch's rebind onto the broker bytes.
2. make_model's writer: gguf-py's GGUFReader reads its file with the same
   types, shapes and bytes; its Q8_0 and Q4_0 blocks equal gguf.quants'.
3. The test stand-ins (fake_gguf/): their reader gives the same tensors as
   gguf-py's, their dequantisers the same values as gguf.quants.dequantize
   and ComfyUI-GGUF's dequant.py.
Prints one line per check; exits 1 on the first mismatch."""

from __future__ import annotations

import importlib
import os
import runpy
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
STUBS = "torchsde,kornia,spandrel,comfyui_frontend_package,comfy_aimdo,comfy_angle,comfy_kitchen"


def setup(comfyui: str, comfyui_gguf: str):
    """ComfyUI's comfy package (CPU, missing optional packages stubbed as
    run_real.sh does), the real gguf package, and ComfyUI-GGUF's loader and
    dequant modules (its __init__/nodes are not needed)."""
    os.environ.setdefault("DISTORCH_IMPORT_STUBS", STUBS)
    runpy.run_path(os.path.join(HERE, "real", "sitecustomize.py"))
    sys.argv = [sys.argv[0], "--cpu"]
    sys.path[:0] = [comfyui, os.path.join(REPO, "client_py"), os.path.join(REPO, "tests", "tools"),
                    HERE]
    import comfy.options
    comfy.options.enable_args_parsing()
    import gguf
    package = types.ModuleType("comfyui_gguf_real")
    package.__path__ = [comfyui_gguf]
    sys.modules["comfyui_gguf_real"] = package
    loader = importlib.import_module("comfyui_gguf_real.loader")
    dequant = importlib.import_module("comfyui_gguf_real.dequant")
    return gguf, loader, dequant


def fail(what: str) -> None:
    print(f"FAIL {what}")
    sys.exit(1)


def ok(what: str) -> None:
    print(f"ok   {what}")


def main() -> int:
    comfyui, comfyui_gguf = sys.argv[1], sys.argv[2]
    gguf, loader, dequant = setup(comfyui, comfyui_gguf)
    import numpy as np
    import torch

    import make_model
    from distorch.comfy import gguf as dgguf

    Q = gguf.GGMLQuantizationType
    rng = np.random.default_rng(2024)
    arrays = {"img_in.weight": ("Q8_0", rng.standard_normal((320, 1280)).astype(np.float32) * 0.05),
              "img_in.bias": ("F32", rng.standard_normal(320).astype(np.float32)),
              "double_blocks.0.img_attn.qkv.weight": ("Q4_K", rng.standard_normal((96, 512)).astype(np.float32)),
              "double_blocks.0.img_mlp.0.weight": ("Q4_0", rng.standard_normal((64, 256)).astype(np.float32)),
              "final_layer.linear.weight": ("Q4_K", rng.standard_normal((2, 8, 256)).astype(np.float32))}
    work = tempfile.mkdtemp(prefix="gguf-real-")

    # -- 1. the real writer, the real loader, through a real distorchd.
    real_path = os.path.join(work, "real.gguf")
    writer = gguf.GGUFWriter(real_path, "flux")
    for name, (qtype, x) in arrays.items():
        if qtype == "F32":
            writer.add_tensor(name, x)
        elif qtype == "Q4_K":
            raw = np.frombuffer(make_model.quantize_q4_k(x), np.uint8)
            shape = (*x.shape[:-1], x.shape[-1] // 256 * 144)
            writer.add_tensor(name, raw.reshape(shape), raw_dtype=Q.Q4_K)
        else:
            writer.add_tensor(name, gguf.quants.quantize(x, Q[qtype]), raw_dtype=Q[qtype])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    stock_sd = loader.gguf_sd_loader(real_path)
    # ComfyUI-GGUF's default (dequant_dtype None) multiplies in the blocks'
    # fp16; with dequant_dtype float32 it computes as gguf.quants does.
    stock = {k: dequant.dequantize_tensor(v, torch.float32) for k, v in stock_sd.items()}
    stock32 = {k: dequant.dequantize_tensor(v, torch.float32, torch.float32)
               for k, v in stock_sd.items()}
    for name, (qtype, x) in arrays.items():
        if getattr(stock_sd[name], "tensor_type", None) != Q[qtype]:
            fail(f"{name}: stock tensor_type {stock_sd[name].tensor_type}, want {qtype}")
        reference = gguf.quants.dequantize(np.ascontiguousarray(stock_sd[name].numpy()), Q[qtype])
        if not np.array_equal(stock32[name].numpy(), reference.reshape(x.shape)):
            fail(f"{name}: ComfyUI-GGUF's dequant differs from gguf.quants.dequantize")
    ok("real GGUFWriter file: ComfyUI-GGUF dequant (float32) == gguf.quants.dequantize "
       "(Q8_0, Q4_K, Q4_0)")

    from daemon_fixture import Daemon
    import distorch
    import pathlib
    daemon = Daemon(pathlib.Path(work))
    try:
        client = distorch.Client(daemon.socket)
        loaded = client.load(real_path, compute_device="sim:0")
        ours_sd = loader.gguf_sd_loader(real_path)
        rebound, kept = dgguf.rebind(ours_sd, loaded)
        if (rebound, kept) != (len(arrays), 0):
            fail(f"rebind: {rebound} rebound, {kept} kept; want {len(arrays)}, 0")
        spans = [(t.data_ptr(), t.data_ptr() + t.numel() * t.element_size())
                 for t in loaded.tensors.values()]
        for name, (qtype, x) in arrays.items():
            v = ours_sd[name]
            if not any(a <= v.data_ptr() < b for a, b in spans):
                fail(f"{name}: not broker memory after rebind")
            if type(v) is not type(stock_sd[name]) or v.tensor_type != Q[qtype]:  # noqa: E721 (that very class)
                fail(f"{name}: {type(v).__name__} {getattr(v, 'tensor_type', None)}")
            if tuple(v.shape) != x.shape or v.size() != stock_sd[name].size():
                fail(f"{name}: shape {tuple(v.shape)} / storage {tuple(v.size())}")
            if not (torch.equal(dequant.dequantize_tensor(v, torch.float32), stock[name]) and
                    torch.equal(dequant.dequantize_tensor(v, torch.float32, torch.float32),
                                stock32[name])):
                fail(f"{name}: dequantised broker weight differs from the stock loader's")
        if not ours_sd["img_in.weight"].is_largest_weight:
            fail("is_largest_weight lost in the rebind")
        ok(f"distorchd + rebind: {rebound} GGMLTensors on broker bytes, dequantised identically "
           f"to ComfyUI-GGUF's stock gguf_sd_loader")
        loaded.close()
        client.close()
    finally:
        daemon.stop()

    # -- 2. make_model's writer, read by gguf-py.
    ours_path = os.path.join(work, "ours.gguf")
    make_model.write_gguf_arrays(ours_path, arrays, {"general.architecture": "flux"})
    real_reader, ours_reader = gguf.GGUFReader(real_path), gguf.GGUFReader(ours_path)
    for t in ours_reader.tensors:
        qtype, x = arrays[t.name]
        if t.tensor_type != Q[qtype] or tuple(int(d) for d in reversed(t.shape.tolist())) != x.shape:
            fail(f"make_model file: {t.name} reads as {t.tensor_type.name} {t.shape.tolist()}")
        values = gguf.quants.dequantize(np.ascontiguousarray(t.data), t.tensor_type).reshape(x.shape)
        error = np.sqrt(np.mean((values - x) ** 2) / np.mean(x ** 2))  # relative RMS
        if error > {"F32": 0, "Q8_0": 0.01}.get(qtype, 0.15):
            fail(f"make_model file: {t.name} decodes {error:.3f} (relative RMS) off its values")
    ok("make_model.write_gguf_arrays: gguf-py reads every tensor's type, shape and values")
    real_bytes = {t.name: bytes(np.ascontiguousarray(t.data)) for t in real_reader.tensors}
    for t in ours_reader.tensors:
        qtype = arrays[t.name][0]
        if qtype in ("Q8_0", "Q4_0") and bytes(np.ascontiguousarray(t.data)) != real_bytes[t.name]:
            mine, theirs = np.frombuffer(bytes(np.ascontiguousarray(t.data)), np.uint8), \
                np.frombuffer(real_bytes[t.name], np.uint8)
            fail(f"{t.name}: make_model's {qtype} differs from gguf.quants.quantize in "
                 f"{int((mine != theirs).sum())} of {mine.size} bytes")
    ok("make_model's Q8_0 and Q4_0 blocks are byte-identical to gguf.quants.quantize's")

    # -- 3. the test stand-ins against gguf-py and ComfyUI-GGUF.
    fake_dir = os.path.join(HERE, "fake_gguf")
    spec = importlib.util.spec_from_file_location("fake_gguf_reader", os.path.join(fake_dir, "gguf.py"))
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    fake_tensors = {t.name: t for t in fake.GGUFReader(real_path).tensors}
    for t in real_reader.tensors:
        f = fake_tensors[t.name]
        if (int(f.tensor_type) != int(t.tensor_type) or f.data.shape != t.data.shape
                or f.data.dtype != t.data.dtype or bytes(f.data) != bytes(t.data)
                or f.n_bytes != t.n_bytes):
            fail(f"fake_gguf reader: {t.name} differs from gguf-py's")
    arch = fake.GGUFReader(real_path).get_field("general.architecture")
    if str(bytes(arch.parts[arch.data[-1]]), "utf-8") != "flux":
        fail("fake_gguf reader: general.architecture")
    ok("fake_gguf/gguf.py reader == gguf-py GGUFReader (types, byte shapes, bytes, fields)")

    # fake dequant.py imports `gguf`: give it the stand-in under that name.
    real_gguf = sys.modules["gguf"]
    sys.modules["gguf"] = fake
    try:
        spec = importlib.util.spec_from_file_location(
            "fake_dequant", os.path.join(fake_dir, "comfyui_gguf", "dequant.py"))
        fake_dequant = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fake_dequant)
    finally:
        sys.modules["gguf"] = real_gguf
    for name, (qtype, x) in arrays.items():
        if qtype == "F32":
            continue
        data = torch.from_numpy(np.ascontiguousarray(stock_sd[name].numpy()))
        mine = fake_dequant.dequantize(data, fake.GGMLQuantizationType[qtype], torch.Size(x.shape),
                                       torch.float32)
        if not torch.equal(mine, stock32[name]):
            fail(f"fake_gguf dequant of {name} ({qtype}) differs from ComfyUI-GGUF's: max "
                 f"{float((mine - stock32[name]).abs().max())}")
    ok("fake_gguf dequantisers (Q8_0, Q4_K, Q4_0) == ComfyUI-GGUF's dequant.py (float32), "
       "bit for bit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
