"""LoadRequest.own_placement: a load of a model that is already resident
shares it whatever allocation it asked for, and the reply says what the
residency was placed for; with own_placement it gets a residency placed as it
asked (a second one, capacity-checked) unless one with that placement exists."""

from __future__ import annotations

import os
import threading

import pytest

from harness import layered_tensors, write_model

MIB = 1 << 20


def model_file(scratch: str, name: str = "m.safetensors") -> str:
    path = os.path.join(scratch, name)
    write_model(path, layered_tensors(16, 4 * MIB, seed=11))  # ~64 MiB
    return path


def test_second_allocation_attaches_unless_own_placement(daemon, workers, scratch):
    path = model_file(scratch)
    p1, p2, p3 = workers(3)

    first = p1.call("load", key="m", path=path, alloc="sim:0,*")
    assert not first["shared"]
    assert first["residency_allocation"] == "sim:0,*"
    assert first["residency_compute_device"] == "sim:0"  # the default: the first GPU
    assert first["requested_allocation"] == "sim:0,*"

    # Another allocation without own_placement: shared, and the reply says
    # where the weights really are and what was asked.
    shared = p2.call("load", key="shared", path=path, alloc="sim:1,*", compute="sim:1")
    assert shared["shared"] is True
    assert shared["model_id"] == first["model_id"]
    assert shared["residency_allocation"] == "sim:0,*"
    assert shared["residency_compute_device"] == "sim:0"
    assert shared["requested_allocation"] == "sim:1,*"
    assert shared["requested_compute_device"] == "sim:1"
    assert set(shared["tensor_devices"].values()) == {"sim:0"}
    assert any("was not applied" in n and "own_placement" in n
               for n in shared["placement"]["notes"]), shared["placement"]["notes"]

    # The same allocation with own_placement: a second residency, placed as asked.
    own = p2.call("load", key="own", path=path, alloc="sim:1,*", compute="sim:1",
                  own_placement=True)
    assert own["shared"] is False
    assert own["model_id"] != first["model_id"]
    assert own["residency_allocation"] == "sim:1,*"
    assert own["residency_compute_device"] == "sim:1"
    assert set(own["tensor_devices"].values()) == {"sim:1"}
    assert p2.call("hashes", key="own")["hashes"] == p1.call("hashes", key="m")["hashes"]

    models = {int(m["model_id"]): m for m in daemon.models()}
    assert len(models) == 2
    assert models[first["model_id"]]["allocation"] == "sim:0,*"
    assert models[first["model_id"]]["own_placement"] is False
    assert models[own["model_id"]]["allocation"] == "sim:1,*"
    assert models[own["model_id"]]["compute_device"] == "sim:1"
    assert models[own["model_id"]]["own_placement"] is True
    held = daemon.broker_bytes()
    assert held["sim:0"] >= own["nbytes"] and held["sim:1"] >= own["nbytes"]

    # distorchctl models shows each residency's allocation.
    table = daemon.ctl("models")
    assert table.returncode == 0, table.stderr
    assert "ALLOCATION" in table.stdout
    assert "sim:0,* on sim:0" in table.stdout
    assert "sim:1,* on sim:1 (own)" in table.stdout

    # own_placement with a placement that exists attaches to it: to the
    # second residency, and to the first (the canonical form decides, not
    # the spelling).
    again = p3.call("load", key="again", path=path, alloc=" SIM:1 , * ", compute="sim:1",
                    own_placement=True)
    assert again["shared"] is True and again["model_id"] == own["model_id"]
    back = p3.call("load", key="back", path=path, alloc="sim:0,*", own_placement=True)
    assert back["shared"] is True and back["model_id"] == first["model_id"]
    assert len(daemon.models()) == 2

    # Without own_placement a load shares the model's first residency.
    plain = p3.call("load", key="plain", path=path, alloc="cpu,*")
    assert plain["model_id"] == first["model_id"]


def test_concurrent_own_placement_loads_load_once(daemon, workers, scratch):
    path = model_file(scratch)
    base, *procs = workers(4)
    first = base.call("load", key="m", path=path, alloc="sim:0,*")
    gate = threading.Barrier(len(procs))

    def ask(w):
        gate.wait(10)
        w.send("load", key="m", path=path, alloc="sim:1,*", compute="sim:1", own_placement=True)

    threads = [threading.Thread(target=ask, args=(w,)) for w in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    results = [w.receive("load", timeout=120) for w in procs]
    assert all(r.get("ok") for r in results), results
    assert len({r["model_id"] for r in results}) == 1
    assert results[0]["model_id"] != first["model_id"]
    assert sorted(r["shared"] for r in results) == [False, True, True]
    assert len(daemon.models()) == 2


@pytest.mark.daemon_config(devices="sim:0=1GiB,sim:1=32MiB")
def test_own_placement_is_capacity_checked(daemon, workers, scratch):
    path = model_file(scratch)
    p1, p2 = workers(2)
    first = p1.call("load", key="m", path=path, alloc="sim:0,*")
    assert not first["shared"]

    refused = p2.call("load", key="own", path=path, alloc="sim:1,*", compute="sim:1",
                      own_placement=True, check=False)
    assert refused["ok"] is False
    assert refused["code"] == "RESOURCE_EXHAUSTED", refused
    assert "sim:1 is short by" in refused["message"], refused
    assert len(daemon.models()) == 1

    # Sharing needs no room.
    shared = p2.call("load", key="shared", path=path, alloc="sim:1,*", compute="sim:1")
    assert shared["shared"] is True and shared["model_id"] == first["model_id"]


def test_compute_device_conflict_names_both(daemon, workers, scratch):
    path = model_file(scratch)
    (p1,) = workers(1)
    # MultiGPU's EXPERT#COMPUTE names the compute device; the request's must agree.
    refused = p1.call("load", key="m", path=path, alloc="sim:0,16mb;cpu,*#sim:1",
                      compute="sim:0", check=False)
    assert refused["ok"] is False and refused["code"] == "INVALID_ARGUMENT", refused
    assert refused["message"] == ("the allocation computes on sim:1 but the request on "
                                  "sim:0: give the same compute device to both")
    # An empty compute device takes the string's.
    ok = p1.call("load", key="m", path=path, alloc="sim:0,16mb;cpu,*#sim:1")
    assert ok["residency_compute_device"] == "sim:1"
    assert ok["residency_allocation"] == "sim:0,16mib;cpu,*#sim:1"
