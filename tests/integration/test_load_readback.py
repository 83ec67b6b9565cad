"""A model placed on three devices (sim:0, sim:1, cpu) reads back byte for
byte through the mappings the client receives, and the first blocks really
sit on the first device listed (DESIGN.md §5)."""

from __future__ import annotations

import hashlib
import os
import zlib

import numpy as np
import pytest

import make_model
from harness import EXTRA_DTYPES, layered_tensors, write_model

LAYER = 512 << 10  # bytes per layer weight


def test_three_devices_read_back(daemon, workers, scratch):
    path = os.path.join(scratch, "three.safetensors")
    tensors = layered_tensors(12, LAYER, seed=1, extras=True)
    expected = write_model(path, tensors, EXTRA_DTYPES)
    (p,) = workers(1)

    # ~2 layers on sim:0, ~3 on sim:1, the rest (7 + extras) on cpu.
    r = p.call("load", key="m", path=path, alloc="sim:0, 1.1mb; SIM:1,1.6MB ;cpu,*")
    assert not r["shared"]
    placement = r["placement"]
    assert [d["device"] for d in placement["devices"]] == ["sim:0", "sim:1", "cpu"]
    assert all(d["blocks"] > 0 and d["bytes"] > 0 for d in placement["devices"])

    # Model order: runs of sim:0, then sim:1, then cpu; tiny blocks stay on the
    # compute device (sim:0 here, the first simulated GPU).
    order = {"sim:0": 0, "sim:1": 1, "cpu": 2}
    quota_blocks = [b for b in placement["blocks"] if b["reason"] == ""]
    ranks = [order[b["device"]] for b in quota_blocks]
    assert ranks == sorted(ranks), placement["blocks"]
    assert quota_blocks[0]["device"] == "sim:0"
    assert quota_blocks[0]["block"] == "layers.0.proj"
    assert quota_blocks[-1]["device"] == "cpu"
    for b in placement["blocks"]:
        if b["reason"] == "tiny":
            assert b["device"] == placement["compute_device"] == "sim:0"

    # Every tensor sits where its block was placed, and reads back exactly.
    block_device = {b["block"]: b["device"] for b in placement["blocks"]}
    assert set(r["tensor_devices"]) == set(tensors)
    for name, device in r["tensor_devices"].items():
        assert device == block_device[r["blocks"][name]], name
    assert r["tensor_devices"]["layers.0.proj.weight"] == "sim:0"
    assert r["tensor_devices"]["layers.11.proj.weight"] == "cpu"
    assert {"sim:0", "sim:1", "cpu"} == set(r["tensor_devices"].values())

    hashes = p.call("hashes", key="m")["hashes"]
    assert hashes == expected

    # dtypes and shapes as in the file (BF16 included).
    assert r["dtypes"]["extra.bf16"] == "torch.bfloat16"
    assert r["dtypes"]["extra.bool"] == "torch.bool"
    assert r["dtypes"]["extra.f64"] == "torch.float64"
    for name, array in tensors.items():
        assert r["shapes"][name] == list(array.shape), name

    # The daemon's accounting matches the placement.
    held = daemon.broker_bytes()
    for d in placement["devices"]:
        assert held[d["device"]] >= d["bytes"], (d, held)


def test_gguf_quantised_tensors_arrive_as_raw_bytes(daemon, workers, scratch):
    path = os.path.join(scratch, "quant.gguf")
    specs = [make_model.TensorSpec("blk.0.ffn.weight", "Q8_0", (64, 128)),
             make_model.TensorSpec("blk.0.ffn.bias", "F32", (64,)),
             make_model.TensorSpec("blk.1.attn.weight", "Q4_0", (32, 256)),
             make_model.TensorSpec("blk.1.attn.norm", "F16", (256,))]

    def content(spec):
        return np.random.default_rng(zlib.crc32(spec.name.encode())).bytes(spec.nbytes)

    make_model.write_gguf(path, specs, lambda spec, out: out.write(content(spec)),
                          {"general.architecture": "test"})
    (p,) = workers(1)
    # GGUF is part of every distorchd build: an UNIMPLEMENTED answer is a failure.
    r = p.call("load", key="q", path=path, alloc="sim:0,*", check=False)
    assert r["ok"], r
    assert r["dtypes"] == {"blk.0.ffn.weight": "torch.uint8", "blk.0.ffn.bias": "torch.float32",
                           "blk.1.attn.weight": "torch.uint8", "blk.1.attn.norm": "torch.float16"}
    assert r["shapes"]["blk.0.ffn.weight"] == [specs[0].nbytes]  # flat GGML blocks
    assert r["shapes"]["blk.0.ffn.bias"] == [64]
    hashes = p.call("hashes", key="q")["hashes"]
    assert hashes == {s.name: hashlib.sha256(content(s)).hexdigest() for s in specs}


@pytest.mark.daemon_config(load_threads=4, extra_config='host_segment_min = "1MiB"')
def test_cpu_part_split_into_segments_reads_back_and_is_shared(daemon, workers, scratch):
    # 12 layers of 512 KiB plus extras: ~6 MiB on cpu, so four 1 MiB+ segments
    # (one per load thread), written in parallel by the daemon.
    path = os.path.join(scratch, "segments.safetensors")
    tensors = layered_tensors(12, LAYER, seed=7, extras=True)
    expected = write_model(path, tensors, EXTRA_DTYPES)
    first, second = workers(2)

    r = first.call("load", key="m", path=path, alloc="cpu,*", compute="cpu", keep=True)
    assert r["arena_devices"] == ["cpu"] * 4, r["arena_devices"]
    assert set(r["tensor_devices"].values()) == {"cpu"}
    assert first.call("hashes", key="m")["hashes"] == expected

    # A second process attaches to the same four memfds and reads the same bytes.
    r2 = second.call("load", key="m", path=path, alloc="cpu,*", compute="cpu")
    assert r2["shared"] and r2["model_id"] == r["model_id"]
    assert r2["arena_devices"] == ["cpu"] * 4
    assert second.call("hashes", key="m")["hashes"] == expected

    # Counted once: the four segments together, about the model's size.
    held = daemon.broker_bytes()["cpu"]
    assert sum(a.nbytes for a in tensors.values()) <= held < 2 * sum(a.nbytes for a in tensors.values())
