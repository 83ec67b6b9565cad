"""Several client processes loading one file share one residency: one
model_id, memory counted once by the daemon, and the second process maps the
first one's pages instead of holding a private copy."""

from __future__ import annotations

import os
import threading

from harness import layered_tensors, write_model

MIB = 1 << 20


def test_two_processes_share_one_residency(daemon, workers, scratch):
    path = os.path.join(scratch, "shared.safetensors")
    expected = write_model(path, layered_tensors(32, 4 * MIB, seed=2))  # ~128 MiB
    warm_path = os.path.join(scratch, "warm.safetensors")
    write_model(warm_path, layered_tensors(2, 64 << 10, seed=3))
    p1, p2 = workers(2)

    first = p1.call("load", key="m", path=path)
    assert not first["shared"]
    assert p1.call("hashes", key="m")["hashes"] == expected  # p1 maps every page
    size = first["nbytes"]
    assert size >= 120 * MIB
    held_once = daemon.broker_bytes()["sim:0"]
    assert size <= held_once < size + 4 * MIB

    # p2 warms its load path on another model, then measures around the shared load.
    p2.call("load", key="warm", path=warm_path)
    p2.call("hashes", key="warm")
    p2.call("release", key="warm")
    before = p2.call("memory")

    second = p2.call("load", key="m", path=path)
    assert second["model_id"] == first["model_id"]
    assert second["shared"] is True
    assert second["lease_id"] != first["lease_id"]
    assert p2.call("hashes", key="m")["hashes"] == expected  # touches every page
    after = p2.call("memory")

    # One residency, counted once, with both sessions' leases.
    models = daemon.models()
    assert len(models) == 1
    assert sorted(int(lease["session_id"]) for lease in models[0]["leases"]) == \
        sorted([p1.session_id, p2.session_id])
    assert daemon.broker_bytes()["sim:0"] == held_once
    assert daemon.status_broker_bytes() == {"sim:0": held_once}

    # p2 maps the very pages p1 maps (each is mapped by both processes: the
    # kernel counts them Shared_*, none Private_*), and p2's own private
    # memory (everything but those mappings) grows by far less than the model.
    assert after["memfd_maps"] >= 1
    assert after["memfd_rss"] >= 0.95 * size, after
    assert after["memfd_shared"] == after["memfd_rss"], after
    assert after["memfd_private"] == 0, after
    private_growth = (after["private"] - after["memfd_private"]) - \
        (before["private"] - before["memfd_private"])
    anon_growth = after["anon"] - before["anon"]
    assert private_growth < 0.05 * size, (before, after)
    assert anon_growth < 0.05 * size, (before, after)


def test_concurrent_loads_load_once(daemon, workers, scratch):
    path = os.path.join(scratch, "race.safetensors")
    expected = write_model(path, layered_tensors(16, 4 * MIB, seed=4))  # ~64 MiB
    procs = workers(4)

    # All four ask at (nearly) the same moment.
    gate = threading.Barrier(len(procs))

    def ask(w):
        gate.wait(10)
        w.send("load", key="m", path=path, alloc="sim:0,20mb;sim:1,20mb;cpu,*")

    threads = [threading.Thread(target=ask, args=(w,)) for w in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    results = [w.receive("load", timeout=120) for w in procs]
    assert all(r.get("ok") for r in results), results

    assert len({r["model_id"] for r in results}) == 1
    assert sorted(r["shared"] for r in results) == [False, True, True, True]
    assert len({r["lease_id"] for r in results}) == 4
    placements = [r["placement"] for r in results]
    assert all(p == placements[0] for p in placements)

    models = daemon.models()
    assert len(models) == 1 and len(models[0]["leases"]) == 4
    assert models[0]["state"] == "ready"
    held = daemon.broker_bytes()
    total = sum(held.values())
    assert results[0]["nbytes"] <= total < results[0]["nbytes"] + 3 * 4 * MIB
    for w in procs:
        assert w.call("hashes", key="m")["hashes"] == expected
