"""distorchctl end to end against a real daemon: every command, human and
--json output (flag before or after the command), the per-device summary of
plan and load and their --blocks runs, JSON numbers, operator pins, and exit
codes / messages on bad input."""

from __future__ import annotations

import json
import os
import re
from typing import Any, List, Tuple

import make_model
from distorch_test_daemon import wait_until
from harness import layered_tensors, write_model

MIB = 1 << 20
# blocks 0-159    (160 blocks)  on sim:0  697.89 MiB  img_in .. x  + 46 tiny on sim:0 (11.50 KiB)
RUN = re.compile(r"^blocks? (\d+)(?:-(\d+))? +\((\d+) blocks?\) +on (\S+)(?: \((\w+)\))? +"
                 r"[\d.]+ [KMGT]?i?B +(.*)$")


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
    human = _ok(daemon.ctl("plan", "--model", path, "--alloc", "sim:0,3mb;cpu,*", "--blocks",
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
    assert [(int(lease["session_id"]), lease["keep_loaded"]) for lease in models[0]["leases"]] == [(1, True)]
    assert {d["device"] for d in models[0]["devices"]} == {"sim:1"}
    pins = [s for s in daemon.ctl_json("sessions")["sessions"] if int(s["session_id"]) == 1][0]
    assert pins["client_name"] == "pins" and pins["leases"][0]["model_name"] == "pinned.safetensors"

    # A client attaches to the pinned model; another model is not kept.
    assert p.call("load", key="pinned", path=path)["shared"] is True
    p.call("load", key="other", path=other)
    ids = {m["name"]: int(m["model_id"]) for m in daemon.models()}
    out = _ok(daemon.ctl("free", "--all"))
    # The pinned model stays resident: released, not ejected.
    assert sorted(out.splitlines()) == sorted([
        f"ejected model {ids['other.safetensors']} 'other.safetensors'",
        f"released model {ids['pinned.safetensors']} 'pinned.safetensors' "
        "(still resident: other leases hold it)"])
    names = [m["name"] for m in daemon.models()]
    assert names == ["pinned.safetensors"]  # free --all never drops a pin...
    # ...but it released the client's unkept lease on it: only the pin remains.
    assert [int(lease["session_id"]) for lease in daemon.models()[0]["leases"]] == [1]
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


def _flux(scratch: str, size: str = "48MiB") -> str:
    """A Flux-shaped model (make_model.py): big linears with tiny norm blocks
    between them, as in the real checkpoint."""
    path = os.path.join(scratch, "flux.safetensors")
    assert make_model.main(["--arch", "flux", "--size", size, "--out", path]) == 0
    return path


def _runs(out: str) -> List[Tuple[int, int, int, str, str, str]]:
    """(first, last, count, device, reason, rest of the line) of each --blocks line."""
    runs = []
    for line in out.splitlines():
        m = RUN.match(line)
        if m:
            first, last = int(m[1]), int(m[2] or m[1])
            runs.append((first, last, int(m[3]), m[4], m[5] or "", m[6]))
    return runs


def test_plan_prints_a_summary_and_folds_tiny_blocks(daemon, scratch):
    path = _flux(scratch)
    args = ["plan", "--model", path, "--alloc", "sim:0,16mb;sim:1,16mb;cpu,*",
            "--devices", "sim:0=1GiB,sim:1=1GiB,cpu=4GiB"]
    placement = daemon.ctl_json(*args)
    blocks = placement["blocks"]
    tiny = [b for b in blocks if b["reason"] == "tiny"]
    assert len(blocks) > 100 and tiny, "the model should have many blocks, some tiny"

    # By default: one line per device and the notes, no block table.
    summary = _ok(daemon.ctl(*args)).splitlines()
    assert len(summary) <= 8, summary
    assert re.match(rf"model: [\d.]+ MiB in {len(blocks)} blocks, compute device sim:0", summary[0])
    assert summary[0].endswith("allocation sim:0,16mib;sim:1,16mib;cpu,*")
    assert summary[1].split() == ["DEVICE", "QUOTA", "PLACED", "SHARE", "BLOCKS"]
    rows = {line.split()[0]: line.split() for line in summary[2:5]}
    assert list(rows) == ["sim:0", "sim:1", "cpu"]
    for d in placement["devices"]:
        assert rows[d["device"]][-1] == str(d["blocks"])
        assert rows[d["device"]][-2] == f"{100 * d['bytes'] / placement['total_bytes']:.1f}%"
    assert any(line.startswith("note: ") and "tiny blocks" in line for line in summary)
    assert summary[-1] == "3 runs of blocks; --blocks lists them"
    assert not _runs("\n".join(summary)) and "double_blocks.0" not in "\n".join(summary)

    # --blocks: the summary, then one line per run; tiny blocks (which stay on
    # the compute device) do not break a run on another device.
    out = _ok(daemon.ctl(*args, "--blocks"))
    assert out.startswith("\n".join(summary[:-1]) + "\n")
    runs = _runs(out)
    assert [(r[3], r[4]) for r in runs] == [("sim:0", ""), ("sim:1", ""), ("cpu", "")]
    assert runs[0][0] == 0 and runs[-1][1] == len(blocks) - 1
    for (first, last, count, *_), nxt in zip(runs, runs[1:] + [None]):
        assert count == last - first + 1
        if nxt:
            assert nxt[0] == last + 1
    unfolded = 1 + sum(1 for a, b in zip(blocks, blocks[1:])
                       if (a["device"], a["reason"]) != (b["device"], b["reason"]))
    assert unfolded > 10 * len(runs)  # what the table printed before folding
    # The tiny blocks inside the sim:1 and cpu runs are named, with their device.
    folded = 0
    for first, last, _, device, _, rest in runs:
        elsewhere = [b for b in blocks[first:last + 1] if b["device"] != device]
        assert all(b["reason"] == "tiny" and b["device"] == "sim:0" for b in elsewhere)
        if elsewhere:
            assert rest.endswith(f"+ {len(elsewhere)} tiny on sim:0 ({_human(elsewhere)})"), rest
        folded += len(elsewhere)
        assert rest.split("  ")[0] == f"{blocks[first]['block']} .. {blocks[last]['block']}"
    assert folded > 0


def _human(blocks: List[Any]) -> str:
    total = sum(b["bytes"] for b in blocks)
    return f"{total} B" if total < 1024 else f"{total / 1024:.2f} KiB"


def test_load_prints_the_summary_and_blocks_on_request(daemon, scratch):
    path = _flux(scratch, "24MiB")
    out = _ok(daemon.ctl("load", "--pin", "--model", path, "--alloc", "sim:0,8mb;cpu,*"))
    lines = out.splitlines()
    assert re.match(r"model \d+ 'flux.safetensors' loaded \(lease \d+, pinned\)$", lines[0])
    assert re.match(r"model: [\d.]+ MiB in \d+ blocks, compute device sim:0, "
                    r"allocation sim:0,8mib;cpu,\*$", lines[1])
    assert len(lines) <= 8 and not _runs(out) and lines[-1] == "2 runs of blocks; --blocks lists them"
    again = _ok(daemon.ctl("load", "--pin", "--model", path, "--blocks"))
    assert "attached (already resident)" in again
    assert [r[3] for r in _runs(again)] == ["sim:0", "cpu"]
    _ok(daemon.ctl("evict", "flux.safetensors"))


def _digit_strings(doc: Any, where: str = "") -> List[str]:
    """Paths of string values that are all digits: 64-bit integers the proto3
    JSON mapping would have quoted."""
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _digit_strings(v, f"{where}.{k}")]
    if isinstance(doc, list):
        return [p for v in doc for p in _digit_strings(v, f"{where}[]")]
    return [where] if isinstance(doc, str) and doc.isdigit() else []


def test_json_prints_byte_counts_and_ids_as_numbers(daemon, workers, scratch):
    path = os.path.join(scratch, "numbers.safetensors")
    write_model(path, layered_tensors(4, MIB, seed=75))
    (p,) = workers(1, prefix="comfy")
    p.call("load", key="m", path=path, keep=True)
    loaded = json.loads(_ok(daemon.ctl("load", "--pin", "--model", path, "--json",
                                       "--alloc", "sim:0,2mb;cpu,*")))
    docs = {"load": loaded,
            "plan": daemon.ctl_json("plan", "--model", path, "--alloc", "sim:0,2mb;cpu,*"),
            "status": daemon.ctl_json("status"), "devices": daemon.ctl_json("devices"),
            "models": daemon.ctl_json("models"), "sessions": daemon.ctl_json("sessions")}
    for name, doc in docs.items():
        assert _digit_strings(doc) == [], name

    assert type(loaded["model_id"]) is int and type(loaded["lease_id"]) is int
    plan = docs["plan"]
    assert plan["allocation"] == "sim:0,2mib;cpu,*"
    assert type(plan["total_bytes"]) is int and plan["total_bytes"] > 4 * MIB
    assert all(type(d["bytes"]) is int and type(d["quota"]) is int for d in plan["devices"])
    assert plan["devices"][0]["quota"] == 2 * MIB
    assert sum(b["bytes"] for b in plan["blocks"]) == plan["total_bytes"]
    assert type(docs["status"]["uptime_ms"]) is int and docs["status"]["grace_period_ms"] == 1000
    sim1 = [d for d in docs["devices"]["devices"] if d["name"] == "sim:1"][0]
    assert sim1["total_bytes"] == 1 << 30 and sim1["limit_bytes"] == 0
    (model,) = docs["models"]["models"]
    assert model["model_id"] == loaded["model_id"] and model["bytes_total"] == plan["total_bytes"]
    assert {lease["session_id"] for lease in model["leases"]} == {1, p.session_id}
    assert p.session_id in {s["session_id"] for s in docs["sessions"]["sessions"]}
    # Fields at their defaults are still printed (scripts index them blindly).
    assert loaded["tensor_prefixes"] == [] and loaded["shared"] is True
    assert plan["blocks"][0]["reason"] == ""
