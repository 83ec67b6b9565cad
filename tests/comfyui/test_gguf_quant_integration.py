"""A quantised GGUF UNet (Q8_0, Q4_K, Q4_0 blocks) through
DistorchUnetLoaderGGUF with a real distorchd (sim: devices): two ComfyUI-shaped
processes (gguf_worker.py) load the same file; the second attaches to the
first's residency, and both hold the file's quantised bytes unchanged, as
GGMLTensors on broker memory, and compute what ComfyUI-GGUF's own loader
computes."""

import hashlib


import gguf_fixture
from daemon_fixture import Worker


def GgufWorker(daemon, models_dir):
    """A ComfyUI-shaped process with the ComfyUI-GGUF stand-in (gguf_worker.py)."""
    return Worker(daemon, models_dir, script="gguf_worker.py")


def test_two_processes_share_one_quantised_gguf(daemon, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    path = str(models / "q.gguf")
    tensors = gguf_fixture.write_quant_unet(path)
    file_bytes = gguf_fixture.file_tensor_bytes(path)
    want = {k: hashlib.sha256(v).hexdigest() for k, v in file_bytes.items()}
    quantised = {k for k, (qtype, _) in tensors.items() if qtype not in ("F32", "F16")}

    p1, p2 = GgufWorker(daemon, str(models)), GgufWorker(daemon, str(models))
    try:
        first = p1(op="load", file="q.gguf", keep=True)
        second = p2(op="load", file="q.gguf")
        stock = p2(op="stock", file="q.gguf")
        resident = daemon.models()  # while both processes hold their leases
    finally:
        p1.stop()
        p2.stop()

    assert not first["shared"] and second["shared"]
    assert first["model_id"] == second["model_id"]
    assert first["result"] == second["result"] == stock["result"]
    for reply in (first, second):
        params = reply["params"]
        assert set(params) == set(tensors)
        assert all(p["broker"] for p in params.values()), params
        for key in tensors:
            assert params[key]["sha256"] == want[key], key
        for key in quantised:
            qtype, array = tensors[key]
            p = params[key]
            assert (p["class"], p["dtype"], p["tensor_type"]) == ("GGMLTensor", "torch.uint8", qtype)
            assert p["shape"] == list(array.shape)
            assert p["storage"][0] * p["storage"][1] == len(file_bytes[key])

    # One residency, holding exactly the file's tensor data: the quantised
    # blocks as they are, never dequantised.
    (model,) = resident
    assert model["model_id"] == first["model_id"]
    assert int(model["bytes_total"]) == sum(len(v) for v in file_bytes.values())
