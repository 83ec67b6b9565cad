"""Quantised GGUF files through a real distorchd: every GGML block type
ComfyUI-GGUF reads arrives as a flat uint8 run of its exact byte length (rows
x blocks per row x bytes per block), the bytes read back unchanged, and a
second process attaches to the same residency and reads the same bytes. The
Q8_0, Q4_K and Q4_0 tensors are genuine blocks (make_model's quantisers)."""

from __future__ import annotations

import hashlib
import os
import zlib

import numpy as np

import make_model

# (name, GGML type, PyTorch shape). Types without a quantiser get seeded
# random bytes of the right length; the broker never looks inside a block.
TENSORS = [("img_in.weight", "Q8_0", (96, 320)), ("img_in.bias", "F32", (96,)),
           ("blocks.0.attn.weight", "Q4_K", (64, 512)), ("blocks.0.mlp.weight", "Q4_0", (32, 256)),
           ("blocks.1.attn.weight", "Q5_K", (16, 256)), ("blocks.1.mlp.weight", "Q6_K", (8, 512)),
           ("blocks.2.attn.weight", "Q2_K", (4, 256)), ("blocks.2.mlp.weight", "Q3_K", (4, 256)),
           ("blocks.3.attn.weight", "Q5_0", (4, 64)), ("blocks.3.mlp.weight", "Q4_1", (4, 64)),
           ("conv.weight", "F16", (8, 4, 3, 3)), ("norm.weight", "BF16", (4, 64)),
           ("blocks.4.proj.weight", "Q8_0", (2, 3, 64))]


def write(path: str):
    rng = np.random.default_rng(11)
    data = {}
    for name, qtype, shape in TENSORS:
        spec = make_model.TensorSpec(name, qtype, shape)
        if qtype in make_model.QUANTIZERS:
            data[name] = make_model.QUANTIZERS[qtype](rng.standard_normal(shape) * 0.1)
        elif qtype in ("F32", "F16"):
            data[name] = (rng.standard_normal(shape) * 0.1).astype(
                {"F32": "<f4", "F16": "<f2"}[qtype]).tobytes()
        else:
            data[name] = np.random.default_rng(zlib.crc32(name.encode())).bytes(spec.nbytes)
        assert len(data[name]) == spec.nbytes, name
    specs = [make_model.TensorSpec(n, t, s) for n, t, s in TENSORS]
    make_model.write_gguf(path, specs, lambda spec, out: out.write(data[spec.name]),
                          {"general.architecture": "flux"})
    return specs, data


def test_quantised_gguf_reads_back_and_is_shared(daemon, workers, scratch):
    path = os.path.join(scratch, "quant.gguf")
    specs, data = write(path)
    expected = {name: hashlib.sha256(raw).hexdigest() for name, raw in data.items()}
    first, second = workers(2)

    r = first.call("load", key="q", path=path, alloc="sim:0,*", compute="sim:0", keep=True)
    for spec in specs:
        if spec.dtype in ("F32", "F16", "BF16"):
            assert r["shapes"][spec.name] == list(spec.shape), spec.name
        else:  # flat GGML blocks: rows x (row / block) x bytes per block
            _, block, size = make_model.GGML_TYPES[spec.dtype]
            rows = int(np.prod(spec.shape[:-1]))
            assert r["dtypes"][spec.name] == "torch.uint8", spec.name
            assert r["shapes"][spec.name] == [rows * spec.shape[-1] // block * size], spec.name
    assert first.call("hashes", key="q")["hashes"] == expected

    r2 = second.call("load", key="q", path=path, alloc="sim:0,*", compute="sim:0")
    assert r2["shared"] and r2["model_id"] == r["model_id"]
    assert second.call("hashes", key="q")["hashes"] == expected
    held = daemon.broker_bytes()["sim:0"]
    assert sum(len(v) for v in data.values()) <= held < 2 * sum(len(v) for v in data.values())
