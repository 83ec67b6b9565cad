"""The keep/eject verification matrix (DESIGN.md §6), over real processes:
Free releases exactly the calling session's leases with keep_loaded=false.

  A(keep=false), B(keep=true), C(keep=true) -> free: A gone (memory back),
  B and C resident and still readable.
  D(true), E(true) -> free changes nothing.
  SetKeepLoaded flips what free does.
"""

from __future__ import annotations

import os

from harness import layered_tensors, write_model

MIB = 1 << 20


def _write(scratch, name, seed, layers=4):
    path = os.path.join(scratch, f"{name}.safetensors")
    return path, write_model(path, layered_tensors(layers, MIB, seed=seed))


def _by_name(models):
    return {m["name"]: m for m in models}


def test_free_ejects_only_unkept(daemon, workers, scratch):
    files = {n: _write(scratch, n, seed) for seed, n in enumerate("ABC", start=10)}
    (p1,) = workers(1)
    ids = {}
    for name, keep in (("A", False), ("B", True), ("C", True)):
        r = p1.call("load", key=name, path=files[name][0], name=name, keep=keep)
        ids[name] = r["model_id"]
    held_before = daemon.broker_bytes()["sim:0"]
    a_bytes = sum(int(d["bytes"]) for d in _by_name(daemon.models())["A"]["devices"])

    freed = p1.call("free", unload_models=True)
    assert [(m["model_id"], m["name"], m["destroyed"]) for m in freed["released"]] == \
        [(ids["A"], "A", True)]
    assert freed["closed"] == ["A"]  # the client closed its view of A

    models = _by_name(daemon.models())
    assert set(models) == {"B", "C"}
    assert all(m["state"] == "ready" for m in models.values())
    assert all(lease["keep_loaded"] for m in models.values() for lease in m["leases"])
    assert daemon.broker_bytes()["sim:0"] == held_before - a_bytes
    # B and C stay usable in the same process after the free.
    for name in "BC":
        assert p1.call("hashes", key=name)["hashes"] == files[name][1]

    # free_memory only asks the client to reset its caches; nothing is kept less.
    again = p1.call("free", unload_models=True, free_memory=True)
    assert again["released"] == [] and again["reset_caches"] is True
    assert set(_by_name(daemon.models())) == {"B", "C"}


def test_free_with_everything_kept_changes_nothing(daemon, workers, scratch):
    files = {n: _write(scratch, n, seed) for seed, n in enumerate("DE", start=20)}
    p1, p2 = workers(2)
    for name in "DE":
        p1.call("load", key=name, path=files[name][0], name=name, keep=True)
    # Another session's unkept lease on D must not be touched by p1's free...
    p2.call("load", key="D", path=files["D"][0], name="D", keep=False)
    before_models = daemon.models()
    before_bytes = daemon.broker_bytes()

    freed = p1.call("free", unload_models=True)
    assert freed["released"] == [] and freed["closed"] == []
    assert daemon.models() == before_models
    assert daemon.broker_bytes() == before_bytes
    for name in "DE":
        assert p1.call("hashes", key=name)["hashes"] == files[name][1]

    # ...and p2's own free drops only p2's lease; D stays (p1 keeps it).
    freed = p2.call("free", unload_models=True)
    assert freed["closed"] == ["D"]
    models = _by_name(daemon.models())
    assert set(models) == {"D", "E"}
    assert [int(lease["session_id"]) for lease in models["D"]["leases"]] == [p1.session_id]
    assert daemon.broker_bytes() == before_bytes


def test_set_keep_loaded_flips_free(daemon, workers, scratch):
    files = {n: _write(scratch, n, seed) for seed, n in enumerate("FG", start=30)}
    (p1,) = workers(1)
    p1.call("load", key="F", path=files["F"][0], name="F", keep=False)
    p1.call("load", key="G", path=files["G"][0], name="G", keep=True)

    assert p1.call("set_keep", key="F", keep=True)["changed"] == 1
    assert p1.call("set_keep", key="G", keep=False)["changed"] == 1
    assert p1.call("set_keep", key="G", keep=False)["changed"] == 0  # already so
    models = _by_name(daemon.models())
    assert models["F"]["leases"][0]["keep_loaded"] is True
    assert models["G"]["leases"][0]["keep_loaded"] is False

    freed = p1.call("free", unload_models=True)
    assert [m["name"] for m in freed["released"]] == ["G"]
    assert set(_by_name(daemon.models())) == {"F"}
    assert p1.call("hashes", key="F")["hashes"] == files["F"][1]

    # Flip F back: now free ejects it and its memory returns.
    p1.call("set_keep", key="F", keep=False)
    freed = p1.call("free", unload_models=True)
    assert [m["name"] for m in freed["released"]] == ["F"]
    assert daemon.models() == []
    assert sum(daemon.broker_bytes().values()) == 0


def test_free_reply_lists_models_that_stay_resident(daemon, workers, scratch):
    path, _ = _write(scratch, "S", 40)
    p1, p2 = workers(2)
    p1.call("load", key="S", path=path, name="S", keep=True)
    r = p2.call("load", key="S", path=path, name="S", keep=False)
    freed = p2.call("free", unload_models=True)
    assert freed["released"] == [{"model_id": r["model_id"], "name": "S", "destroyed": False}]
