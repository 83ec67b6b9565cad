"""Malformed requests get clear errors (the message says what is wrong) and
leave the daemon serving: bad allocation strings, hostile or truncated files,
devices the host lacks, over-subscription."""

from __future__ import annotations

import os

from harness import json_header, layered_tensors, raw_safetensors, write_model

MIB = 1 << 20
GIB = 1 << 30


def _load_error(worker, **args):
    r = worker.call("load", check=False, **args)
    assert not r["ok"], f"expected an error, got {r}"
    return r


def _hostile_files(scratch):
    files = {}

    def f(name):
        files[name] = os.path.join(scratch, name + ".safetensors")
        return files[name]

    raw_safetensors(f("huge_header"), b"{}", declared_length=1 << 40)
    raw_safetensors(f("bad_json"), b'{"a": {"dtype": ')
    raw_safetensors(f("overlap"), json_header({
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}), b"\0" * 24)
    raw_safetensors(f("truncated"), json_header({
        "a": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}), b"\0" * 100)
    raw_safetensors(f("bad_dtype"), json_header({
        "a": {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]}}), b"\0" * 2)
    raw_safetensors(f("bad_shape"), json_header({
        "a": {"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}}), b"\0" * 16)
    with open(f("too_short"), "wb") as out:
        out.write(b"\x01\x02")
    return files


# (file, code, substrings of the message)
HOSTILE = [
    ("huge_header", "INVALID_ARGUMENT", ["header length is 1099511627776 bytes", "over the limit"]),
    ("bad_json", "INVALID_ARGUMENT", ["invalid JSON"]),
    ("overlap", "INVALID_ARGUMENT", ["'a' [0, 16)", "'b' [8, 24)", "overlap"]),
    ("truncated", None, ["tensor 'a'", "past the end of the file"]),
    ("bad_dtype", "INVALID_ARGUMENT", ["unknown dtype 'F4'"]),
    ("bad_shape", "INVALID_ARGUMENT", ["shape [5]", "span 16"]),
    ("too_short", "INVALID_ARGUMENT", ["too short"]),
]


def test_malformed_requests_get_clear_errors(daemon, workers, scratch):
    good = os.path.join(scratch, "good.safetensors")
    expected = write_model(good, layered_tensors(4, MIB, seed=60))
    files = _hostile_files(scratch)
    sparse = os.path.join(scratch, "sparse.safetensors")  # 1.5 GiB, no disk blocks
    header = json_header({"big": {"dtype": "U8", "shape": [3 * GIB // 2],
                                  "data_offsets": [0, 3 * GIB // 2]}})
    raw_safetensors(sparse, header, sparse_size=8 + len(header) + 3 * GIB // 2)
    (p,) = workers(1)

    # Allocation strings: the message names the offending token.
    r = _load_error(p, key="x", path=good, alloc="sim:0,5gb*;cpu,*")
    assert r["code"] == "INVALID_ARGUMENT"
    assert "'5gb*'" in r["message"] and "not both" in r["message"]
    r = _load_error(p, key="x", path=good, alloc="sim:0,1gb;;cpu,*")
    assert "';'" in r["message"] and "empty entry" in r["message"]
    r = _load_error(p, key="x", path=good, alloc="sim:0,1gb;sim:0,1gb")
    assert "sim:0" in r["message"] and "twice" in r["message"]

    # Hostile and broken files.
    for name, code, parts in HOSTILE:
        r = _load_error(p, key="x", path=files[name], name=f"{name}.safetensors")
        if code:
            assert r["code"] == code, (name, r)
        for part in parts:
            assert part in r["message"], (name, part, r["message"])
        assert f"{name}.safetensors" in r["message"], (name, r["message"])

    # A device this host does not have.
    r = _load_error(p, key="x", path=good, alloc="cuda:7,1gb;cpu,*")
    assert "cuda:7" in r["message"] and "not on this host" in r["message"]
    assert "sim:0" in r["message"]  # lists what the host has

    # Over-subscription: 1.5 GiB cannot fit a 1 GiB sim device, whatever the quota.
    r = _load_error(p, key="x", path=sparse, alloc="sim:0,10gb")
    assert r["code"] == "RESOURCE_EXHAUSTED", r
    assert "sim:0 is short by" in r["message"], r["message"]
    assert "available" in r["message"]

    # A missing file fails in the client, before the daemon.
    r = _load_error(p, key="x", path=os.path.join(scratch, "nope.safetensors"))
    assert r["code"] == "NOT_FOUND" and "nope.safetensors" in r["message"]

    # Nothing leaked, and a normal load still works.
    assert daemon.models() == []
    assert sum(daemon.broker_bytes().values()) == 0
    ok = p.call("load", key="good", path=good, alloc="sim:0,2mb;sim:1,*")
    assert p.call("hashes", key="good")["hashes"] == expected
    assert ok["shared"] is False


def test_spill_turns_oversubscription_into_a_placement(daemon, scratch):
    sparse = os.path.join(scratch, "sparse.safetensors")
    header = json_header({f"blocks.{i}.weight": {"dtype": "U8", "shape": [GIB // 4],
                                                 "data_offsets": [i * GIB // 4, (i + 1) * GIB // 4]}
                          for i in range(6)})
    raw_safetensors(sparse, header, sparse_size=8 + len(header) + 6 * GIB // 4)
    refused = daemon.ctl("plan", "--model", sparse, "--alloc", "sim:0,10gb;cpu,*")
    assert refused.returncode == 1
    assert "sim:0 is short by" in refused.stderr and "allow spilling" in refused.stderr
    plan = daemon.ctl_json("plan", "--model", sparse, "--alloc", "sim:0,10gb;cpu,*",
                           "--allow-spill")
    devices = {d["device"]: int(d["bytes"]) for d in plan["devices"]}
    assert 0 < devices["sim:0"] <= GIB and devices["cpu"] >= GIB // 2
    assert any(b["reason"] == "spill" and b["device"] == "cpu" for b in plan["blocks"])


def test_bad_allocation_is_refused_even_when_resident(daemon, workers, scratch):
    path = os.path.join(scratch, "res.safetensors")
    write_model(path, layered_tensors(2, MIB, seed=62))
    (p,) = workers(1)
    p.call("load", key="m", path=path)
    r = _load_error(p, key="m2", path=path, alloc="sim:0,5gb*;cpu,*")
    assert "'5gb*'" in r["message"]
