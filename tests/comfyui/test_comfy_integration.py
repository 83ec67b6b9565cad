"""distorch.comfy against a real distorchd (sim: devices) with real client
processes: the DESIGN.md §6 matrix over two processes, exact outputs of a
model split over sim:0, sim:1 and cpu, and one residency shared by two
processes."""

import os

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
    return str(directory)


def unet(role, keep, allocation="", compute="sim:0"):
    return {"class_type": "DistorchUNETLoader",
            "inputs": {"unet_name": f"{role}.safetensors", "weight_dtype": "default",
                       "compute_device": compute, "virtual_vram_gb": 0.0, "donor_device": "cpu",
                       "expert_mode_allocations": allocation, "keep_loaded": keep}}


def with_runs(nodes_):
    prompt = dict(nodes_)
    for n in nodes_:
        prompt["run" + n] = {"class_type": "RunModel", "inputs": {"model": [n, 0]}}
    return prompt


def resident(daemon):
    return {m["name"]: m for m in daemon.models()}


def test_verification_matrix_two_processes(daemon, models_dir):
    p1, p2 = Worker(daemon, models_dir), Worker(daemon, models_dir)
    try:
        prompt1 = with_runs({"A": unet("unet_a", False), "B": unet("unet_b", True),
                             "C": unet("unet_c", True)})
        prompt2 = with_runs({"D": unet("unet_d", True), "E": unet("unet_e", True)})
        before1 = {n: p1(op="prompt", prompt=prompt1, node="run" + n)["result"] for n in "ABC"}
        before2 = {n: p2(op="prompt", prompt=prompt2, node="run" + n)["result"] for n in "DE"}
        ids = {n: p1(op="inspect", node=n)["model_id"] for n in "ABC"}
        ids.update({n: p2(op="inspect", node=n)["model_id"] for n in "DE"})
        assert set(resident(daemon)) == {f"unet_{x}.safetensors" for x in "abcde"}

        p1(op="free", unload_models=True, free_memory=True)
        models = resident(daemon)
        assert "unet_a.safetensors" not in models                 # A gone: memory returned
        assert {m["model_id"] for m in models.values()} == {ids[n] for n in "BCDE"}
        after1 = {n: p1(op="prompt", prompt=prompt1, node="run" + n)["result"] for n in "ABC"}
        assert after1 == before1
        for n in "BC":                                            # kept: no reload
            assert p1(op="inspect", node=n)["model_id"] == ids[n]
        assert p1(op="inspect", node="A")["model_id"] != ids["A"]  # A was loaded again

        state = {m["model_id"] for m in daemon.models()}
        p2(op="free", unload_models=True, free_memory=True)        # D, E kept: nothing changes
        assert {m["model_id"] for m in daemon.models()} == state
        assert {n: p2(op="prompt", prompt=prompt2, node="run" + n)["result"] for n in "DE"} == before2
    finally:
        p1.stop()
        p2.stop()


def test_split_model_gives_native_outputs(daemon, models_dir):
    p1 = Worker(daemon, models_dir)
    try:
        prompt = with_runs({"S": unet("unet_a", False, allocation="sim:0,25%;sim:1,35%;cpu,*")})
        out = p1(op="prompt", prompt=prompt, node="runS")["result"]
        info = p1(op="inspect", node="S")
        assert info["devices"] == ["cpu", "sim:0", "sim:1"]
        assert info["params_in_broker"] == info["params"]          # zero-copy: no private weights
        assert info["cast"]                                        # off-compute modules cast at forward
        native = p1(op="native", file="unet_a.safetensors")["result"]
        assert np.array_equal(np.array(out), np.array(native))
    finally:
        p1.stop()


def test_two_processes_share_one_residency(daemon, models_dir):
    big = tiny_models.unet(1)
    big["extra.payload"] = np.ones((32, 1024, 1024), np.uint8).astype(np.float32)[:8]  # 32 MiB
    write_safetensors(os.path.join(models_dir, "big.safetensors"), big)
    prompt = with_runs({"X": unet("big", False, allocation="sim:0,50%;cpu,*")})
    p1, p2 = Worker(daemon, models_dir), Worker(daemon, models_dir)
    try:
        p1(op="prompt", prompt=prompt, node="runX")
        before = p2(op="rss")
        p2(op="prompt", prompt=prompt, node="runX")
        after = p2(op="rss")
        info1, info2 = p1(op="inspect", node="X"), p2(op="inspect", node="X")
        assert info1["model_id"] == info2["model_id"] and info2["shared"]
        assert len(daemon.models()) == 1
        grew_kib = after["RssAnon"] - before["RssAnon"]
        assert grew_kib < 0.1 * 32 * 1024, f"second process grew by {grew_kib} KiB"
    finally:
        p1.stop()
        p2.stop()
