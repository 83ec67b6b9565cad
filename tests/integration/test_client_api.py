"""The Python client (distorch.Client) against a real daemon: connection and
errors, the inspection calls, plan, progress, release, copy-on-write
adoption, odd tensor shapes, eviction events and reconnecting after a daemon
restart."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from distorch_test_daemon import wait_until
from harness import json_header, layered_tensors, python_env, raw_safetensors, write_model

MIB = 1 << 20


def test_import_needs_neither_torch_nor_comfy():
    code = ("import sys, distorch\n"
            "assert 'torch' not in sys.modules and 'grpc' not in sys.modules\n"
            "assert not hasattr(distorch, 'NODE_CLASS_MAPPINGS')  # no ComfyUI here\n"
            "from distorch import Client, DistorchError, DaemonUnavailable\n"
            "assert issubclass(DaemonUnavailable, DistorchError)\n"
            "assert 'torch' not in sys.modules\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=python_env(), timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_unavailable_daemon(tmp_path, monkeypatch):
    from distorch import Client, DaemonUnavailable
    from distorch.client import default_socket_path

    missing = str(tmp_path / "none.sock")
    assert Client.is_available(missing) is False
    with pytest.raises(DaemonUnavailable) as info:
        Client(socket_path=missing)
    assert info.value.code == "UNAVAILABLE" and missing in info.value.message
    assert "distorchd" in str(info.value)

    monkeypatch.setenv("DISTORCH_SOCKET", missing)
    assert default_socket_path() == missing
    monkeypatch.delenv("DISTORCH_SOCKET")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
    expected = ("/run/distorch/distorchd.sock" if os.geteuid() == 0
                else "/run/user/1234/distorch/distorchd.sock")
    assert default_socket_path() == expected
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    if os.geteuid() != 0:
        assert default_socket_path() == f"/tmp/distorch-{os.geteuid()}/distorchd.sock"


def test_inspection_plan_and_errors(daemon, scratch):
    from distorch import Client, DistorchError

    path = os.path.join(scratch, "plan.safetensors")
    tensors = layered_tensors(6, MIB, seed=80)
    write_model(path, tensors)
    assert Client.is_available(daemon.socket)
    with Client(socket_path=daemon.socket, client_name="api-test") as c:
        assert c.session_id > 1
        status = c.status()
        assert status.sessions == 1 and status.models == 0 and status.grace_period_ms == 1000
        assert [d.name for d in c.devices()] == ["cpu", "sim:0", "sim:1"]
        me = [s for s in c.sessions() if s.session_id == c.session_id][0]
        assert me.client_name == "api-test" and me.pid == os.getpid() and me.connected
        assert c.models() == []
        assert isinstance(c.soft_empty_cache(), int)

        from_file = c.plan(path, "sim:0,2.5mb;cpu,*")
        assert [d["device"] for d in from_file["devices"]] == ["sim:0", "cpu"]
        assert from_file["blocks"][0] == {"block": "layers.0.proj", "device": "sim:0",
                                          "bytes": from_file["blocks"][0]["bytes"], "reason": ""}
        from_arrays = c.plan(tensors, "sim:0,2.5mb;cpu,*")
        assert [b["device"] for b in from_arrays["blocks"]] == \
            [b["device"] for b in from_file["blocks"]]
        with pytest.raises(DistorchError) as info:
            c.plan(path, "sim:0,2.5mb*")
        assert info.value.code == "INVALID_ARGUMENT" and "'2.5mb*'" in info.value.message
        assert c.models() == []  # planning loads nothing
    # Closed: calls are refused.
    with pytest.raises(DistorchError) as info:
        c.status()
    assert info.value.code == "FAILED_PRECONDITION"


def test_load_progress_release_and_odd_shapes(daemon, scratch):
    from distorch import Client

    path = os.path.join(scratch, "odd.safetensors")
    scalar = np.array(2.5, dtype=np.float32)
    vector = np.arange(6, dtype=np.int16)
    header = json_header({
        "scalar": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
        "empty": {"dtype": "F16", "shape": [0, 3], "data_offsets": [4, 4]},
        "vector": {"dtype": "I16", "shape": [2, 3], "data_offsets": [4, 16]}})
    raw_safetensors(path, header, scalar.tobytes() + vector.tobytes())
    seen = []
    with Client(socket_path=daemon.socket, client_name="api-test") as c:
        m = c.load(path, progress=lambda done, total: seen.append((done, total)))
        assert seen and seen[-1][0] == seen[-1][1] == 16
        assert m.tensors["scalar"].shape == () and m.tensors["scalar"].item() == 2.5
        assert tuple(m.tensors["empty"].shape) == (0, 3)
        assert m.tensors["vector"].tolist() == [[0, 1, 2], [3, 4, 5]]
        assert set(m.tensor_devices.values()) == {"sim:0"}
        assert m.tensor_dtypes == {"scalar": "F32", "empty": "F16", "vector": "I16"}
        ref = m.release()
        assert ref is not None and ref.model_id == m.model_id and ref.destroyed
        assert m.released and m.closed and m.tensors == {}
        assert c.models() == []


def test_writable_adoption_is_copy_on_write(daemon, workers, scratch):
    path = os.path.join(scratch, "cow.safetensors")
    tensors = layered_tensors(2, MIB, seed=81)
    expected = write_model(path, tensors)
    writer, reader = workers(2)
    writer.call("load", key="m", path=path, writable=True)
    writer.call("write", key="m", tensor="layers.0.proj.weight", value=12345.0)
    mine = writer.call("hashes", key="m")["hashes"]
    assert mine["layers.0.proj.weight"] != expected["layers.0.proj.weight"]
    # The shared base is untouched: a new reader (and a fresh map) sees the file.
    assert reader.call("load", key="m", path=path)["shared"] is True
    assert reader.call("hashes", key="m")["hashes"] == expected


def test_eviction_event_reaches_the_client(daemon, workers, scratch):
    path = os.path.join(scratch, "evicted.safetensors")
    expected = write_model(path, layered_tensors(2, MIB, seed=82))
    (p,) = workers(1)
    r = p.call("load", key="m", path=path, keep=True)
    out = daemon.ctl("evict", str(r["model_id"]))
    assert out.returncode == 0, out.stderr

    events = wait_until(lambda: p.call("evict_events")["events"], 10, "the eviction event")
    assert events == [[r["model_id"], "evicted.safetensors"]]
    assert p.call("evict_events")["lost"] == ["m"]
    # Still mapped in the client (the daemon no longer holds it for anyone).
    h = p.call("hashes", key="m")
    assert h["hashes"] == expected and h["lost"] is True
    assert daemon.models() == []


def test_reconnect_after_daemon_restart(daemon, workers, scratch):
    path = os.path.join(scratch, "survivor.safetensors")
    expected = write_model(path, layered_tensors(2, MIB, seed=83))
    (p,) = workers(1)
    first = p.call("load", key="m", path=path, keep=True)
    old_session = p.session_id

    assert daemon.stop() == 0
    # While it is down, calls fail with DaemonUnavailable (and keep trying later).
    down = p.call("session_id", check=False)
    assert not down["ok"] and down["code"] == "UNAVAILABLE", down
    assert "distorchd" in down["message"]
    daemon.start()
    # The next call reconnects with a new session and reports the lost model.
    new_session = p.call("session_id")["session_id"]
    assert new_session > 0
    lost = p.call("lost")
    assert lost["lost_models"] == [{"model_id": first["model_id"], "name": "survivor.safetensors",
                                    "destroyed": False}]
    assert lost["lost"] == ["m"]
    # The old daemon's pages stay mapped and intact.
    assert p.call("hashes", key="m")["hashes"] == expected
    sessions = daemon.ctl_json("sessions")["sessions"]
    assert [int(s["session_id"]) for s in sessions if s["client_name"] == "p1"] == [new_session]
    # And the new daemon serves the client normally.
    again = p.call("load", key="m2", path=path)
    assert again["shared"] is False
    assert p.call("hashes", key="m2")["hashes"] == expected
    assert new_session not in (0,) and old_session > 0


def test_cuda_arena_without_cuda_is_a_clear_error():
    """The CUDA IPC path needs a GPU; without one adoption says so (and maps
    nothing). The GPU path itself is not exercised by this suite."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this check is for machines without CUDA")
    from distorch import AdoptionError
    from distorch.adopt import adopt
    from distorch.v1 import broker_pb2 as pb

    arena = pb.Arena(index=0, device="cuda:0", bytes=1 << 20, kind=pb.Arena.CUDA_IPC,
                     cuda_ipc_handle=bytes(64), cuda_device=0)
    loc = pb.TensorLocation(name="w", dtype="F16", shape=[4], arena=0, offset=0, nbytes=8)
    with pytest.raises(AdoptionError) as info:
        adopt([arena], [loc], [])
    assert "cuda:0" in info.value.message and "no CUDA" in info.value.message


def test_float8_needs_a_torch_that_has_it(daemon, scratch):
    torch = pytest.importorskip("torch")
    from distorch import AdoptionError, Client

    path = os.path.join(scratch, "f8.safetensors")
    raw_safetensors(path, json_header({"w": {"dtype": "F8_E4M3", "shape": [8],
                                             "data_offsets": [0, 8]}}), bytes(range(8)))
    with Client(socket_path=daemon.socket, client_name="api-test") as c:
        if hasattr(torch, "float8_e4m3fn"):
            m = c.load(path)
            assert m.tensors["w"].dtype == torch.float8_e4m3fn
            m.release()
        else:
            with pytest.raises(AdoptionError) as info:
                c.load(path)
            assert "F8_E4M3" in info.value.message and "torch.float8_e4m3fn" in info.value.message
        # A failed adoption gives its lease back: nothing stays resident.
        wait_until(lambda: c.models() == [], 5, "the lease of the failed adoption to go")
