"""LoadRequest.tensor_prefixes: a residency of part of a file. The UNet, text
encoder and VAE of one checkpoint, loaded as three parts with three
allocations, are three residencies, each placed, capacity-checked and shared
on its own; the bytes read back are the file's."""

from __future__ import annotations

import os
import time
from typing import Dict, Tuple

import numpy as np
import pytest

from harness import write_model

MIB = 1 << 20

UNET = ["model.diffusion_model.", "alphas_cumprod"]
CLIP = ["cond_stage_model."]
VAE = ["first_stage_model."]


def checkpoint(scratch: str) -> Tuple[str, Dict[str, str]]:
    """An SD-shaped checkpoint: UNet 16 MiB (8 blocks), text encoder 4 MiB
    (4 blocks), VAE 2 MiB (2 blocks), and a stray top-level tensor."""
    rng = np.random.default_rng(5)
    tensors: Dict[str, np.ndarray] = {"alphas_cumprod": rng.standard_normal(1000).astype(np.float32)}

    def blocks(prefix: str, count: int, nbytes: int) -> None:
        for i in range(count):
            tensors[f"{prefix}{i}.weight"] = rng.integers(0, 255, nbytes, dtype=np.uint8)
            tensors[f"{prefix}{i}.bias"] = rng.standard_normal(64).astype(np.float32)

    blocks("cond_stage_model.transformer.layers.", 4, 1 * MIB)
    blocks("first_stage_model.decoder.up.", 2, 1 * MIB)
    blocks("model.diffusion_model.blocks.", 8, 2 * MIB)
    path = os.path.join(scratch, "ckpt.safetensors")
    return path, write_model(path, tensors)


def part_of(hashes: Dict[str, str], prefixes) -> Dict[str, str]:
    return {n: h for n, h in hashes.items() if any(n.startswith(p) for p in prefixes)}


@pytest.mark.daemon_config(devices="sim:0=64MiB,sim:1=8MiB")
def test_three_parts_three_allocations(daemon, workers, scratch):
    path, want = checkpoint(scratch)
    p1, p2 = workers(2)

    unet = p1.call("load", key="unet", path=path, alloc="sim:0,*", tensor_prefixes=UNET)
    clip = p1.call("load", key="clip", path=path, alloc="sim:1,2mb;cpu,*", compute="sim:1",
                   tensor_prefixes=CLIP)
    vae = p1.call("load", key="vae", path=path, alloc="cpu,*", compute="cpu",
                  tensor_prefixes=VAE)
    assert len({unet["model_id"], clip["model_id"], vae["model_id"]}) == 3
    assert not (unet["shared"] or clip["shared"] or vae["shared"])

    # Each holds exactly its tensors, placed by its own allocation.
    assert set(unet["tensor_devices"]) == set(part_of(want, UNET))
    assert set(unet["tensor_devices"].values()) == {"sim:0"}
    assert unet["tensor_prefixes"] == sorted(UNET)
    assert set(clip["tensor_devices"]) == set(part_of(want, CLIP))
    clip_devices = {clip["tensor_devices"][f"cond_stage_model.transformer.layers.{i}.weight"]
                    for i in range(4)}
    assert clip_devices == {"sim:1", "cpu"}, clip["tensor_devices"]
    assert clip["residency_compute_device"] == "sim:1"
    assert set(vae["tensor_devices"]) == set(part_of(want, VAE))
    assert set(vae["tensor_devices"].values()) == {"cpu"}

    # Byte-exact read-back of every tensor of every part.
    got = {}
    for key in ("unet", "clip", "vae"):
        got.update(p1.call("hashes", key=key)["hashes"])
    assert got == want

    # The daemon lists three residencies of one file, each with its part.
    models = {int(m["model_id"]): m for m in daemon.models()}
    assert len(models) == 3
    assert models[clip["model_id"]]["tensor_prefixes"] == CLIP
    assert "|part=cond_stage_model." in models[clip["model_id"]]["identity"]
    assert models[clip["model_id"]]["tensors"] == 8
    assert models[unet["model_id"]]["tensor_prefixes"] == sorted(UNET)
    table = daemon.ctl("models")
    assert table.returncode == 0, table.stderr
    assert "PART" in table.stdout
    assert "alphas_cumprod,model.diffusion_model." in table.stdout
    assert "first_stage_model." in table.stdout

    # A second process asking for the same part (spelled otherwise) shares it.
    shared = p2.call("load", key="clip", path=path, alloc="cpu,*",
                     tensor_prefixes=["cond_stage_model.", "cond_stage_model.transformer."])
    assert shared["shared"] is True and shared["model_id"] == clip["model_id"]
    assert p2.call("hashes", key="clip")["hashes"] == part_of(want, CLIP)
    assert len(daemon.models()) == 3

    # The parts live apart: when p1 goes, its UNet and VAE are freed and the
    # text encoder p2 holds stays.
    p1.call("exit")
    deadline = time.time() + 15
    while time.time() < deadline and len(daemon.models()) != 1:
        time.sleep(0.2)
    left = daemon.models()
    assert [int(m["model_id"]) for m in left] == [clip["model_id"]]
    assert p2.call("hashes", key="clip")["hashes"] == part_of(want, CLIP)


@pytest.mark.daemon_config(devices="sim:0=64MiB,sim:1=8MiB")
def test_each_part_is_capacity_checked(daemon, workers, scratch):
    path, want = checkpoint(scratch)
    (p1,) = workers(1)
    # sim:1 (8 MiB) takes the text encoder (4 MiB) and then the VAE (2 MiB)...
    p1.call("load", key="clip", path=path, alloc="sim:1,*", tensor_prefixes=CLIP)
    vae = p1.call("load", key="vae", path=path, alloc="sim:1,*", tensor_prefixes=VAE)
    assert set(vae["tensor_devices"].values()) == {"sim:1"}
    # ...but not the UNet (16 MiB), which the whole file would have needed too.
    refused = p1.call("load", key="unet", path=path, alloc="sim:1,*", tensor_prefixes=UNET,
                      check=False)
    assert refused["ok"] is False and refused["code"] == "RESOURCE_EXHAUSTED", refused
    assert "sim:1 is short by" in refused["message"], refused
    assert len(daemon.models()) == 2
    # The UNet part fits where the allocation sends it.
    unet = p1.call("load", key="unet", path=path, alloc="sim:0,*", tensor_prefixes=UNET)
    assert p1.call("hashes", key="unet")["hashes"] == part_of(want, UNET)
    assert set(unet["tensor_devices"].values()) == {"sim:0"}


def test_prefixes_that_match_nothing_are_refused(daemon, workers, scratch):
    path, _ = checkpoint(scratch)
    (p1,) = workers(1)
    none = p1.call("load", key="x", path=path, tensor_prefixes=["vae.", "text_encoders."],
                   check=False)
    assert none["ok"] is False and none["code"] == "INVALID_ARGUMENT", none
    assert none["message"] == (
        "model 'ckpt.safetensors': tensor prefixes 'text_encoders.', 'vae.' match no tensor "
        "of the model (its 29 tensor names begin with 'alphas_cumprod', 'cond_stage_model.', "
        "'first_stage_model.', 'model.'): give prefixes of its tensor names")
    too_many = p1.call("load", key="x", path=path,
                       tensor_prefixes=[f"p{i}." for i in range(65)], check=False)
    assert too_many["code"] == "INVALID_ARGUMENT", too_many
    assert too_many["message"].startswith("65 tensor prefixes given; at most 64")
    empty = p1.call("load", key="x", path=path, tensor_prefixes=[""], check=False)
    assert empty["code"] == "INVALID_ARGUMENT", empty
    assert daemon.models() == []


@pytest.mark.daemon_config(devices="sim:0=64MiB,sim:1=8MiB")
def test_distorchctl_prefix(daemon, scratch):
    path, _ = checkpoint(scratch)
    plan = daemon.ctl_json("plan", "--model", path, "--alloc", "sim:1,*",
                           "--prefix", "first_stage_model.")
    assert int(plan["total_bytes"]) == 2 * MIB + 2 * 256
    offline = daemon.ctl_json("plan", "--model", path, "--alloc", "sim:1,*", "--devices",
                              "sim:1=8MiB", "--prefix", "first_stage_model.")
    assert int(offline["total_bytes"]) == int(plan["total_bytes"])
    whole = daemon.ctl("plan", "--model", path, "--alloc", "sim:1,*")
    assert whole.returncode == 1 and "sim:1 is short by" in whole.stderr, whole.stderr

    load = daemon.ctl("load", "--model", path, "--alloc", "cpu,*", "--compute", "cpu", "--pin",
                      "--prefix", "first_stage_model.", "--prefix", "cond_stage_model.")
    assert load.returncode == 0, load.stderr
    assert "part cond_stage_model.,first_stage_model." in load.stdout
    (model,) = daemon.models()
    assert model["tensor_prefixes"] == ["cond_stage_model.", "first_stage_model."]
    assert model["tensors"] == 12

    bad = daemon.ctl("load", "--model", path, "--prefix", "nothing.", "--pin")
    assert bad.returncode == 1
    assert "tensor prefixes 'nothing.' match no tensor" in bad.stderr, bad.stderr
