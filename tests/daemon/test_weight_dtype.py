"""weight_dtype end to end: a real distorchd converts a model at load time and
the Python client reads the converted bytes back through its mappings. The
reference values are computed here, independently of LibTorch: float16 by
numpy's astype (round to nearest even), bfloat16 by bit manipulation (round to
nearest even on the upper 16 bits of the float32 encoding)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import tempfile
from typing import Dict, Iterator, Tuple

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
for path in (os.path.join(REPO, "client_py"), os.path.join(REPO, "tests", "tools")):
    if path not in sys.path:
        sys.path.insert(0, path)

from distorch import Client  # noqa: E402
from distorch.errors import DistorchError  # noqa: E402
from distorch_test_daemon import TestDaemon  # noqa: E402

import torch  # noqa: E402  (after the client, as ComfyUI imports it)


def write_safetensors(path: str, tensors: Dict[str, Tuple[str, np.ndarray]]) -> None:
    """tensors: name -> (safetensors dtype, array whose bytes are the data)."""
    header, offset, blobs = {}, 0, []
    for name, (dtype, array) in tensors.items():
        data = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for blob in blobs:
            f.write(blob)


def bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, round to nearest even; NaN stays NaN."""
    u = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    rounded[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded


def bits16(tensor: "torch.Tensor") -> np.ndarray:
    return tensor.contiguous().view(torch.int16).numpy().view(np.uint16)


@pytest.fixture
def daemon() -> Iterator[TestDaemon]:
    d = TestDaemon(devices="sim:0=256MiB", grace_period_s=1)
    try:
        d.start()
        yield d
    finally:
        rc = d.stop()
        if rc != 0:
            print(d.log()[-20000:])
        d.cleanup()
    assert rc == 0


@pytest.fixture
def model() -> Iterator[Tuple[str, Dict[str, np.ndarray]]]:
    rng = np.random.default_rng(7)
    weight = (rng.standard_normal((300, 257)) * 100).astype(np.float32)
    # Edge cases: ties to even, overflow to inf, subnormals, underflow, NaN, -0.
    edges = np.array([1.0, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504.0, 65520.0, 1e6, 6e-8, 1e-8,
                      -0.0, np.inf, -np.inf, np.nan, 1 / 3,
                      np.frombuffer(struct.pack("<I", 0x3F808000), np.float32)[0],
                      np.frombuffer(struct.pack("<I", 0x3F818000), np.float32)[0]],
                     dtype=np.float32)
    half = rng.standard_normal(1000).astype(np.float16)
    ids = np.arange(-5, 5, dtype=np.int32)
    arrays = {"blocks.0.weight": weight, "blocks.0.edges": edges, "blocks.1.half": half,
              "blocks.1.ids": ids}
    folder = tempfile.mkdtemp(prefix="dt-dtype-", dir=os.environ.get("DISTORCH_TEST_TMP", "/tmp"))
    path = os.path.join(folder, "m.safetensors")
    write_safetensors(path, {"blocks.0.weight": ("F32", weight), "blocks.0.edges": ("F32", edges),
                             "blocks.1.half": ("F16", half), "blocks.1.ids": ("I32", ids)})
    yield path, arrays
    shutil.rmtree(folder, ignore_errors=True)


# blocks.0 is 154,230 bytes as fp16 and 308,460 in the file: only the converted
# size fits the 151 KiB (154,624-byte) quota on sim:0, and blocks.1 (2,040
# bytes) then goes to cpu.
@pytest.mark.parametrize("allocation", ["cpu,*", "sim:0,151kb;cpu,*"])
def test_fp16_matches_numpy(daemon, model, allocation):
    path, arrays = model
    with Client(daemon.socket, client_name="dtype-test") as client:
        m = client.load(path, allocation=allocation, weight_dtype="fp16")
        assert m.tensor_dtypes == {"blocks.0.weight": "F16", "blocks.0.edges": "F16",
                                   "blocks.1.half": "F16", "blocks.1.ids": "I32"}
        for name in ("blocks.0.weight", "blocks.0.edges"):
            got = bits16(m.tensors[name])
            with np.errstate(over="ignore"):  # 1e6 and 65520 become inf, as they should
                want = arrays[name].astype(np.float16).view(np.uint16)
            nan = np.isnan(arrays[name])
            assert np.array_equal(got[~nan], want[~nan]), name
            assert np.all((got[nan] & 0x7C00) == 0x7C00) and np.all(got[nan] & 0x03FF)
        assert np.array_equal(bits16(m.tensors["blocks.1.half"]),
                              arrays["blocks.1.half"].view(np.uint16))
        assert np.array_equal(m.tensors["blocks.1.ids"].numpy(), arrays["blocks.1.ids"])
        # Planned and stored with the converted sizes.
        assert m.nbytes == (300 * 257 + 15 + 1000) * 2 + 10 * 4
        assert m.placement["total_bytes"] == m.nbytes
        if allocation.startswith("sim:0"):
            assert m.tensor_devices["blocks.0.weight"] == "sim:0"
            assert m.tensor_devices["blocks.1.half"] == "cpu"
        m.release()


def test_bf16_and_fp32_match_bit_manipulation(daemon, model):
    path, arrays = model
    with Client(daemon.socket, client_name="dtype-test") as client:
        bf16 = client.load(path, allocation="cpu,*", weight_dtype="bfloat16")
        assert bf16.tensor_dtypes["blocks.0.weight"] == "BF16"
        for name in ("blocks.0.weight", "blocks.0.edges"):
            got = bits16(bf16.tensors[name])
            want = bf16_bits(arrays[name])
            nan = np.isnan(arrays[name])
            assert np.array_equal(got[~nan], want[~nan]), name
            assert np.all((got[nan] & 0x7F80) == 0x7F80) and np.all(got[nan] & 0x007F)
        # float16 -> bfloat16 goes through float32 exactly.
        assert np.array_equal(bits16(bf16.tensors["blocks.1.half"]),
                              bf16_bits(arrays["blocks.1.half"].astype(np.float32)))

        fp32 = client.load(path, allocation="cpu,*", weight_dtype="fp32")
        assert fp32.model_id != bf16.model_id  # the dtype is part of the model's identity
        assert np.array_equal(fp32.tensors["blocks.0.weight"].numpy(), arrays["blocks.0.weight"])
        assert np.array_equal(fp32.tensors["blocks.1.half"].numpy(),
                              arrays["blocks.1.half"].astype(np.float32))
        again = client.load(path, allocation="cpu,*", weight_dtype="BF16")
        assert again.shared and again.model_id == bf16.model_id
        for m in (again, fp32, bf16):
            m.release()


def test_unsupported_targets_are_named(daemon, model):
    path, _ = model
    with Client(daemon.socket, client_name="dtype-test") as client:
        with pytest.raises(DistorchError) as error:
            client.load(path, allocation="cpu,*", weight_dtype="int4")
        assert error.value.code == "INVALID_ARGUMENT"
        assert error.value.message.startswith("weight_dtype 'int4' is not known; use one of keep")
        if not hasattr(torch, "float8_e4m3fn"):
            # This daemon build's LibTorch decides, not the client's torch;
            # Debian's is 1.13 (no float8) like its python3-torch.
            with pytest.raises(DistorchError) as error:
                client.load(path, allocation="cpu,*", weight_dtype="fp8_e4m3fn")
            assert error.value.code == "UNIMPLEMENTED"
            assert "this build cannot convert to fp8_e4m3fn (LibTorch " in error.value.message
            assert "has no float8 types" in error.value.message
