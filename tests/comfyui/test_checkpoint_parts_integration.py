"""The advanced checkpoint loader against a real distorchd: one checkpoint,
three broker residencies (UNet, CLIP, VAE parts) placed by their own
allocations on sim devices, ComfyUI's models built from them with the file's
values, and a part shared with another client."""

import logging

import numpy as np
import pytest

import nodes
from execution import PromptExecutor, validate_inputs

from daemon_fixture import Daemon
import tiny_models


@pytest.fixture
def real_env(comfy_env, tmp_path):
    from distorch import Client
    from distorch.comfy import session
    (tmp_path / "daemon").mkdir()
    daemon = Daemon(tmp_path / "daemon")
    client = Client(socket_path=daemon.socket)
    session.set_client_factory(lambda: client)
    yield comfy_env, daemon, client
    session.drop("test over")
    session.set_client_factory(None)
    daemon.stop()


def test_checkpoint_as_three_residencies(real_env, caplog):
    env, daemon, client = real_env
    mappings = {**nodes.NODE_CLASS_MAPPINGS, **env.classes}
    prompt = {"1": {"class_type": "CheckpointLoaderAdvancedDisTorch2MultiGPU",
                    "inputs": {"ckpt_name": env.names["ckpt"], "unet_compute_device": "sim:0",
                               "unet_virtual_vram_gb": 0.0, "unet_donor_device": "cpu",
                               "clip_compute_device": "sim:1", "clip_virtual_vram_gb": 0.0,
                               "clip_donor_device": "cpu", "vae_device": "cpu",
                               "unet_expert_mode_allocations": "sim:0,50%;cpu,*",
                               "clip_expert_mode_allocations": "sim:1,*", "eject_models": False}}}
    ok, errors = validate_inputs(prompt, "1", mappings)
    assert ok, errors
    with caplog.at_level(logging.INFO, logger="distorch"):
        model, clip, vae = PromptExecutor(mappings).execute(prompt, "1")

    models = {tuple(m["tensor_prefixes"]): m for m in daemon.models()}
    assert set(models) == {("model.diffusion_model.",), ("cond_stage_model.",), ("first_stage_model.",)}
    unet_m, clip_m, vae_m = (models[("model.diffusion_model.",)], models[("cond_stage_model.",)],
                             models[("first_stage_model.",)])
    assert (unet_m["allocation"], unet_m["compute_device"]) == ("sim:0,50%;cpu,*", "sim:0")
    # (the tiny UNet's blocks are pinned or tiny: they stay on its compute device)
    assert "sim:0" in {d["device"] for d in unet_m["devices"]} <= {"sim:0", "cpu"}
    assert (clip_m["allocation"], clip_m["compute_device"]) == ("sim:1,*", "sim:1")
    assert {d["device"] for d in clip_m["devices"]} == {"sim:1"}
    assert vae_m["compute_device"] == "cpu" and {d["device"] for d in vae_m["devices"]} == {"cpu"}
    assert (unet_m["tensors"], clip_m["tensors"], vae_m["tensors"]) == (11, 7, 2)
    assert all(m["leases"][0]["keep_loaded"] for m in models.values())  # eject_models off

    # ComfyUI's models hold the file's values (in place where the layout allows).
    want = tiny_models.checkpoint()
    entry = model.model._distorch_placement.entry
    loaded = [m for _, m in entry.loaded]
    assert [m.tensor_prefixes for m in loaded] == [("model.diffusion_model.",), ("cond_stage_model.",),
                                                   ("first_stage_model.",)]
    for m, root in zip(loaded, (model.model, clip.patcher.model, vae.patcher.model)):
        for name, t in m.tensors.items():
            assert np.array_equal(t.to("cpu").numpy(), want[name]), name
        # the part's memory is what ComfyUI's model computes with
        assert {p.data_ptr() for p in root.parameters()} & {t.data_ptr() for t in m.tensors.values()}
    assert "ckpt.safetensors loaded in 3 parts" in caplog.text
    assert "clip (cond_stage_model.): compute sim:1, allocation 'sim:1,*' -> sim:1 " in caplog.text

    # Another client asking for the CLIP part shares that residency.
    path = f"{env.dir}/{env.names['ckpt']}"
    shared = daemon.ctl("load", "--model", path, "--prefix", "cond_stage_model.", "--pin")
    assert shared["shared"] is True and int(shared["model_id"]) == clip_m["model_id"]
    assert len(daemon.models()) == 3
