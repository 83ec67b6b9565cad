"""distorchctl end to end against a real daemon: every command, human and
--json output (flag before or after the command), operator pins, and exit
codes / messages on bad input."""

from __future__ import annotations

import json
import os

import pytest

from distorch_test_daemon import wait_until
from harness import layered_tensors, write_model

MIB = 1 << 20


def _ok(done):
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr}"
    return done.stdout


def test_inspection_commands(daemon, workers, scratch):
    path = os.path.join(scratch, "ctl.safetensors")
    write_model(path, layered_tensors(4, MIB, seed=70))
    (p,) = workers(1, prefix="comfy")
    p.call("load", key="m", path=path, keep=True)

    out = _ok(daemon.ctl("status"))
    assert "distorchd" in out and "sessions: 1" in out and "models: 1" in out
    assert "grace period: 1s" in out
    status = daemon.ctl_json("status")
    assert status["socket_path"] == daemon.socket
    assert int(status["grace_period_ms"]) == 1000
    assert status["sessions"] == 1 and status["models"] == 1

    out = _ok(daemon.ctl("devices"))
    assert out.splitlines()[0].split()[:3] == ["DEVICE", "KIND", "TOTAL"]
    assert "sim:0" in out and "sim:1" in out and "cpu" in out
    devices = {d["name"]: d for d in daemon.ctl_json("devices")["devices"]}
    assert devices["sim:1"]["kind"] == "sim" and int(devices["sim:1"]["total_bytes"]) == 1 << 30
    assert int(devices["sim:0"]["broker_bytes"]) > 0

    out = _ok(daemon.ctl("models"))
    assert "ctl.safetensors" in out and "ready" in out and "(keep)" in out
    out = _ok(daemon.ctl("sessions"))
    assert "comfy1" in out and str(p.pid) in out and "connected" in out
    sessions = {s["client_name"]: s for s in daemon.ctl_json("sessions")["sessions"]}
    assert int(sessions["comfy1"]["session_id"]) == p.session_id
    assert sessions["comfy1"]["leases"][0]["keep_loaded"] is True

    # --json before and after the command give the same document.
    before = json.loads(_ok(daemon.ctl("--json", "models")))
    after = json.loads(_ok(daemon.ctl("models", "--json")))
    assert before == after and before["models"][0]["name"] == "ctl.safetensors"

    assert "trimmed" in _ok(daemon.ctl("empty-cache"))


def test_plan_with_and_without_daemon(daemon, scratch):
    path = os.path.join(scratch, "plan.safetensors")
    write_model(path, layered_tensors(8, MIB, seed=71))
    # No daemon needed with --devices: point --socket at nothing.
    nowhere = os.path.join(daemon.dir, "absent.sock")
    done = daemon.ctl("plan", "--model", path, "--alloc", "sim:0,3mb;cpu,*",
                      "--devices", "sim:0=1GiB,cpu=4GiB", "--json", socket_path=nowhere)
    offline = json.loads(_ok(done))
    assert [d["device"] for d in offline["devices"]] == ["sim:0", "cpu"]
    assert offline["blocks"][0]["block"] == "layers.0.proj"
    assert offline["blocks"][0]["device"] == "sim:0"
    human = _ok(daemon.ctl("plan", "--model", path, "--alloc", "sim:0,3mb;cpu,*",
                           "--devices", "sim:0=1GiB,cpu=4GiB", socket_path=nowhere))
    assert "DEVICE" in human and "sim:0" in human and "layers.0.proj" in human
    # Without --devices and without a daemon: a clear error.
    done = daemon.ctl("plan", "--model", path, "--alloc", "sim:0,3mb;cpu,*",
                      socket_path=nowhere)
    assert done.returncode == 1 and "cannot reach distorchd" in done.stderr

    # Against the daemon: the same placement for the same inventory and string,
    # and nothing is loaded.
    online = daemon.ctl_json("plan", "--model", path, "--alloc", "sim:0,3mb;cpu,*")
    assert [b["device"] for b in online["blocks"]] == [b["device"] for b in offline["blocks"]]
    assert online["compute_device"] == "sim:0"
    assert daemon.models() == []


def test_pin_free_evict(daemon, workers, scratch):
    path = os.path.join(scratch, "pinned.safetensors")
    other = os.path.join(scratch, "other.safetensors")
    write_model(path, layered_tensors(4, MIB, seed=72))
    write_model(other, layered_tensors(2, MIB, seed=73))
    (p,) = workers(1)

    loaded = json.loads(_ok(daemon.ctl("load", "--pin", "--model", path, "--json",
                                       "--alloc", "sim:1,*")))
    assert loaded["shared"] is False
    # The pin outlives the distorchctl process: held by the pin session (1).
    models = daemon.models()
    assert [m["name"] for m in models] == ["pinned.safetensors"]
    assert [(int(l["session_id"]), l["keep_loaded"]) for l in models[0]["leases"]] == [(1, True)]
    assert {d["device"] for d in models[0]["devices"]} == {"sim:1"}
    pins = [s for s in daemon.ctl_json("sessions")["sessions"] if int(s["session_id"]) == 1][0]
    assert pins["client_name"] == "pins" and pins["leases"][0]["model_name"] == "pinned.safetensors"

    # A client attaches to the pinned model; another model is not kept.
    assert p.call("load", key="pinned", path=path)["shared"] is True
    p.call("load", key="other", path=other)
    out = _ok(daemon.ctl("free", "--all"))
    assert "other.safetensors" in out
    names = [m["name"] for m in daemon.models()]
    assert names == ["pinned.safetensors"]  # free --all never drops a pin...
    # ...but it released the client's unkept lease on it: only the pin remains.
    assert [int(l["session_id"]) for l in daemon.models()[0]["leases"]] == [1]
    assert "nothing to free" in _ok(daemon.ctl("free", "--all"))

    out = _ok(daemon.ctl("evict", "pinned.safetensors"))
    assert "evicted model" in out and "pinned.safetensors" in out
    assert daemon.models() == []
    assert daemon.status_broker_bytes() == {}  # (ListDevices: see the skipped test below)
    done = daemon.ctl("evict", "pinned.safetensors")
    assert done.returncode == 1 and "no model named 'pinned.safetensors'" in done.stderr


def test_bad_input_exit_codes(daemon, scratch):
    done = daemon.ctl("frobnicate")
    assert done.returncode == 2 and "unknown command 'frobnicate'" in done.stderr
    assert "usage: distorchctl" in done.stderr
    done = daemon.ctl("models", "--bogus")
    assert done.returncode == 2 and "unknown flag --bogus" in done.stderr
    done = daemon.ctl("load")
    assert done.returncode == 1 and "--model FILE is required" in done.stderr
    done = daemon.ctl("plan", "--alloc", "cpu,*")
    assert done.returncode == 1 and "--model FILE is required" in done.stderr
    done = daemon.ctl("load", "--model", os.path.join(scratch, "missing.safetensors"))
    assert done.returncode == 1 and "cannot open model" in done.stderr
    done = daemon.ctl("free")
    assert done.returncode == 1 and "--all" in done.stderr and "--session" in done.stderr
    done = daemon.ctl("evict")
    assert done.returncode == 1 and "usage: distorchctl evict" in done.stderr
    done = daemon.ctl()
    assert done.returncode == 2 and "usage: distorchctl" in done.stderr
    done = daemon.ctl("--help")
    assert done.returncode == 0 and "usage: distorchctl" in done.stdout
    done = daemon.ctl("status", socket_path=os.path.join(daemon.dir, "absent.sock"))
    assert done.returncode == 1 and "cannot reach distorchd" in done.stderr
    # The daemon is unharmed.
    assert daemon.ctl_json("status")["models"] == 0


def test_evicting_a_ctl_loaded_model_returns_its_memory(daemon, scratch):
    path = os.path.join(scratch, "pinned.safetensors")
    write_model(path, layered_tensors(4, MIB, seed=74))
    _ok(daemon.ctl("load", "--pin", "--model", path))
    _ok(daemon.ctl("evict", "pinned.safetensors"))
    wait_until(lambda: sum(daemon.broker_bytes().values()) == 0, 5,
               "the evicted model's arenas to be freed")
