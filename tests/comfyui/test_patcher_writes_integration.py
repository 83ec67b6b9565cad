"""Against a real distorchd: a hook LoRA on the text encoder, a LoRA on the
UNet and a ModelSave in one ComfyUI-shaped process leave the shared broker
bytes as they were, which a second process that shares the residencies reads.

The first process maps the daemon's memory read-only (as every client does):
before the fix, the hook LoRA's encode killed it with SIGSEGV."""

import hashlib

import numpy as np
import pytest

import tiny_models
from daemon_fixture import Worker
from make_model import write_safetensors


@pytest.fixture
def models_dir(tmp_path):
    directory = tmp_path / "models"
    directory.mkdir()
    tiny_models.write_all(str(directory))
    rng = np.random.default_rng(7)
    write_safetensors(str(directory / "clip_lora.safetensors"), {
        k: (rng.standard_normal(shape) * 0.3).astype(np.float32) for k, shape in (
            ("0.proj.weight.lora_up", (8, 2)), ("0.proj.weight.lora_down", (2, 24)),
            ("0.embed.weight.lora_up", (16, 2)), ("0.embed.weight.lora_down", (2, 8)))})
    return str(directory)


ALLOCATION = "sim:0,50%;cpu,*"
PROMPT = {
    "C": {"class_type": "DistorchCLIPLoader",
          "inputs": {"clip_name": "te_a.safetensors", "type": "stable_diffusion", "compute_device": "sim:0",
                     "virtual_vram_gb": 0.0, "donor_device": "cpu", "expert_mode_allocations": ALLOCATION,
                     "keep_loaded": False}},
    "U": {"class_type": "DistorchUNETLoader",
          "inputs": {"unet_name": "unet_a.safetensors", "weight_dtype": "default", "compute_device": "sim:0",
                     "virtual_vram_gb": 0.0, "donor_device": "cpu", "expert_mode_allocations": ALLOCATION,
                     "keep_loaded": False}},
    "H": {"class_type": "CreateHookLora",
          "inputs": {"lora_name": "clip_lora.safetensors", "strength_model": 1.0, "strength_clip": 1.0}},
    "S": {"class_type": "SetClipHooks",
          "inputs": {"clip": ["C", 0], "apply_to_conds": True, "schedule_clip": False, "hooks": ["H", 0]}},
    "L": {"class_type": "LoraLoaderModelOnly",
          "inputs": {"model": ["U", 0], "lora_name": "lora1.safetensors", "strength_model": 0.7}},
    "runL": {"class_type": "RunModel", "inputs": {"model": ["L", 0]}},
    "save": {"class_type": "ModelSave", "inputs": {"model": ["L", 0], "filename_prefix": "lora/unet"}},
}
TOKENS = [[1, 2, 3, 4, 15]]


def file_sha256(tensors):
    return {n: hashlib.sha256(np.ascontiguousarray(t).tobytes()).hexdigest() for n, t in tensors.items()}


def test_hooks_lora_and_save_leave_shared_bytes_unchanged(daemon, models_dir):
    p1, p2 = Worker(daemon, models_dir), Worker(daemon, models_dir)
    try:
        plain = p1(op="encode", prompt=PROMPT, node="C", tokens=TOKENS)["result"]
        hooked = p1(op="encode", prompt=PROMPT, node="S", tokens=TOKENS)["result"]
        assert not np.array_equal(np.array(plain), np.array(hooked))  # the hook took effect
        assert p1(op="encode", prompt=PROMPT, node="C", tokens=TOKENS)["result"] == plain
        p1(op="prompt", prompt=PROMPT, node="runL")
        p1(op="prompt", prompt=PROMPT, node="save")

        # a second process on the same residencies reads the file's bytes
        p2(op="prompt", prompt=PROMPT, node="C")
        p2(op="prompt", prompt=PROMPT, node="U")
        for node, source in (("C", tiny_models.text_encoder(2)), ("U", tiny_models.unet(1))):
            first, second = p1(op="broker_bytes", node=node), p2(op="broker_bytes", node=node)
            assert first["model_id"] == second["model_id"]
            assert second["sha256"] == file_sha256(source), node
        assert p2(op="encode", prompt=PROMPT, node="C", tokens=TOKENS)["result"] == plain
    finally:
        p1.stop()
        p2.stop()
