"""A client killed with SIGKILL (mid-load, or holding a loaded model) loses
its leases after the grace period and the memory returns; the daemon keeps
serving the other clients throughout."""

from __future__ import annotations

import os
import time

import pytest

from distorch_test_daemon import wait_until
from harness import layered_tensors, random_blob_model, write_model

MIB = 1 << 20
BIG = 768 * MIB


@pytest.fixture
def big_model(scratch):
    path = os.path.join(scratch, "big.safetensors")
    random_blob_model(path, BIG)
    return path


def _expected_bytes(models):
    expected = {}
    for m in models:
        for d in m["devices"]:
            expected[d["device"]] = expected.get(d["device"], 0) + int(d["bytes"])
    return expected


def _registry_returned(daemon, keep_ids=()):
    """Only the models in keep_ids are listed, and Status counts only their bytes."""
    models = daemon.models()
    if sorted(int(m["model_id"]) for m in models) != sorted(keep_ids):
        return False
    return daemon.status_broker_bytes() == _expected_bytes(models)


def _memory_returned(daemon, keep_ids=()):
    """As _registry_returned, and the devices' arenas (ListDevices) match too."""
    if not _registry_returned(daemon, keep_ids):
        return False
    held = {k: v for k, v in daemon.broker_bytes().items() if v}
    return held == _expected_bytes(daemon.models())


# One reader thread: the load takes long enough to be caught mid-way.
# A grace period long enough that the model is surely still there when the
# test looks right after the kill, even on a loaded machine.
@pytest.mark.daemon_config(load_threads=1, grace_period_s=5)
def test_killed_mid_load_returns_memory(daemon, workers, scratch, big_model):
    small = os.path.join(scratch, "small.safetensors")
    expected_small = write_model(small, layered_tensors(4, MIB, seed=50))
    victim, bystander = workers(2, prefix="k")
    kept = bystander.call("load", key="s", path=small, keep=True)

    # The big model goes to cpu so sim:0 stays free for the bystander.
    victim.send("load", key="big", path=big_model, alloc="cpu,*", compute="cpu",
                report_progress=True)
    deadline = time.monotonic() + 30
    mid_load = False
    while time.monotonic() < deadline:
        msg = victim.next_progress(timeout=0.05)
        if msg and "progress" in msg:
            done, total = msg["progress"]
            if 0 < done < total:
                mid_load = True
                break
        # Kill only once the daemon has the load: before that there is nothing to
        # return. A load that already finished is still a valid kill.
        states = [m["state"] for m in daemon.models() if m["name"] == "big.safetensors"]
        if states == ["loading"]:
            mid_load = True
            break
        if states == ["ready"]:
            break
    victim.kill()
    states = {m["name"]: m["state"] for m in daemon.models()}
    assert states.get("big.safetensors") in ("loading", "ready"), states

    # While the dead session's grace period runs, others are served.
    second = bystander.call("load", key="s2", path=small)
    assert second["shared"] is True

    wait_until(lambda: _registry_returned(daemon, [kept["model_id"]]), 30,
               "the killed client's leases and model to end")
    assert bystander.call("hashes", key="s")["hashes"] == expected_small
    sessions = {int(s["session_id"]) for s in daemon.ctl_json("sessions")["sessions"]}
    assert victim.session_id not in sessions
    assert bystander.session_id in sessions

    # The arenas themselves (what the devices report) come back too.
    wait_until(lambda: _memory_returned(daemon, [kept["model_id"]]), 15,
               "the killed client's arenas to be freed")
    if not mid_load:
        pytest.skip("the load finished before the kill (machine too fast to catch it "
                    "mid-load); memory return was still verified")


def test_killed_after_load_returns_memory(daemon, workers, scratch):
    path = os.path.join(scratch, "held.safetensors")
    write_model(path, layered_tensors(8, 2 * MIB, seed=51))
    victim, bystander = workers(2, prefix="k")
    victim.call("load", key="m", path=path, keep=True)  # kept: still ends with the session
    other = bystander.call("load", key="m", path=path)
    assert other["shared"] is True
    held = daemon.broker_bytes()["sim:0"]
    assert held > 0

    victim.kill()
    # The bystander's lease keeps the model resident after the victim's ends.
    wait_until(lambda: [int(lease["session_id"]) for m in daemon.models() for lease in m["leases"]]
               == [bystander.session_id], 30, "the killed session's lease to end")
    assert daemon.broker_bytes()["sim:0"] == held

    bystander.call("release", key="m")
    wait_until(lambda: _memory_returned(daemon), 10, "the model's memory to return")
    r = bystander.call("load", key="again", path=path)  # still serving
    assert r["shared"] is False
