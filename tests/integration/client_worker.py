#!/usr/bin/python3
"""A real distorch client process driven by a test, one JSON command per
stdin line, one JSON reply per stdout line (progress lines come before the
reply when asked for). Usage: client_worker.py SOCKET [CLIENT_NAME]

Commands ({"op": ...}): load, hashes, free, set_keep, release, close, memory,
models, sessions, session_id, evict_events, lost, exit. Loaded models are
named by the "key" the test chooses. Errors come back as
{"ok": false, "code": ..., "message": ...}.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mmap
import os
import sys
import traceback
from typing import Any, Dict


def reply(obj: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def tensor_bytes_hash(tensor: Any) -> str:
    """sha256 of a CPU tensor's bytes, read in place (no copy)."""
    import torch

    if tensor.numel() == 0:
        return hashlib.sha256(b"").hexdigest()
    flat = tensor.reshape(-1)
    if flat.dtype != torch.uint8:
        flat = flat.view(torch.uint8)
    return hashlib.sha256(flat.numpy()).hexdigest()


def smaps_memory() -> Dict[str, int]:
    """This process's memory (bytes): smaps_rollup totals (private = Private_Clean
    + Private_Dirty, anon = Anonymous) and, for the mappings of broker memfds,
    their Rss split into pages only this process maps (memfd_private) and
    pages other processes map too (memfd_shared). Note that a shared-memory
    page mapped by one process only is reported as Private_* by the kernel."""
    out = {"private": 0, "anon": 0, "rss": 0, "memfd_rss": 0, "memfd_private": 0,
           "memfd_shared": 0, "memfd_maps": 0}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            fields = rest.split()
            if len(fields) != 2 or fields[1] != "kB":
                continue
            if key in ("Private_Clean", "Private_Dirty"):
                out["private"] += int(fields[0]) * 1024
            elif key == "Anonymous":
                out["anon"] = int(fields[0]) * 1024
            elif key == "Rss":
                out["rss"] = int(fields[0]) * 1024
    in_memfd = False
    with open("/proc/self/smaps") as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):  # a mapping's header line
                in_memfd = "memfd:distorch" in line
                out["memfd_maps"] += in_memfd
                continue
            if not in_memfd:
                continue
            key, _, rest = line.partition(":")
            fields = rest.split()
            if len(fields) != 2 or fields[1] != "kB":
                continue
            value = int(fields[0]) * 1024
            if key == "Rss":
                out["memfd_rss"] += value
            elif key in ("Private_Clean", "Private_Dirty"):
                out["memfd_private"] += value
            elif key in ("Shared_Clean", "Shared_Dirty"):
                out["memfd_shared"] += value
    return out


def warm_up() -> None:
    """Exercise torch's buffer/view paths once so their lazy set-up does not
    count as growth in memory measurements."""
    import torch

    region = mmap.mmap(-1, 1 << 16)
    t = torch.frombuffer(region, dtype=torch.uint8, count=4096, offset=4096)
    tensor_bytes_hash(t.view(torch.float32).view(32, 32))
    del t


def main() -> int:
    socket_path = sys.argv[1]
    name = sys.argv[2] if len(sys.argv) > 2 else "test-worker"
    import torch  # noqa: F401  (imported up front: loads then time the daemon, not imports)
    from distorch import Client, DistorchError

    warm_up()
    client = Client(socket_path=socket_path, client_name=name, connect_timeout=10.0)
    evictions = []
    client.on_evicted(lambda model_id, model_name: evictions.append([model_id, model_name]))
    models: Dict[str, Any] = {}
    reply({"ready": True, "pid": os.getpid(), "session_id": client.session_id})

    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        op = cmd.get("op")
        try:
            if op == "load":
                def progress(done: int, total: int) -> None:
                    if cmd.get("report_progress"):
                        reply({"progress": [done, total]})

                m = client.load(cmd["path"], allocation=cmd.get("alloc", ""),
                                compute_device=cmd.get("compute", ""),
                                keep_loaded=cmd.get("keep", False), pins=cmd.get("pins", ()),
                                allow_spill=cmd.get("allow_spill", False),
                                name=cmd.get("name"), progress=progress,
                                writable=cmd.get("writable", False),
                                own_placement=cmd.get("own_placement", False),
                                tensor_prefixes=cmd.get("tensor_prefixes", ()))
                models[cmd.get("key", cmd["path"])] = m
                reply({"ok": True, "model_id": m.model_id, "lease_id": m.lease_id,
                       "shared": m.shared, "placement": m.placement,
                       "tensor_devices": m.tensor_devices, "blocks": m.blocks,
                       "arena_devices": m.arena_devices,
                       "dtypes": {n: str(t.dtype) for n, t in m.tensors.items()},
                       "shapes": {n: list(t.shape) for n, t in m.tensors.items()},
                       "nbytes": m.nbytes,
                       "residency_allocation": m.residency_allocation,
                       "residency_compute_device": m.residency_compute_device,
                       "requested_allocation": m.requested_allocation,
                       "requested_compute_device": m.requested_compute_device,
                       "tensor_prefixes": list(m.tensor_prefixes)})
            elif op == "hashes":
                m = models[cmd["key"]]
                reply({"ok": True, "hashes": {n: tensor_bytes_hash(t) for n, t in m.tensors.items()},
                       "lost": m.lost, "released": m.released})
            elif op == "write":  # in-place write to one tensor (writable models)
                m = models[cmd["key"]]
                m.tensors[cmd["tensor"]].view(-1)[0] = cmd.get("value", 0)
                reply({"ok": True})
            elif op == "free":
                r = client.free(unload_models=cmd.get("unload_models", True),
                                free_memory=cmd.get("free_memory", False))
                reply({"ok": True, "released": [dataclasses.asdict(x) for x in r.released],
                       "reset_caches": r.reset_caches,
                       "closed": sorted(k for k, m in models.items() if m.closed)})
            elif op == "set_keep":
                reply({"ok": True, "changed": client.set_keep_loaded(models[cmd["key"]],
                                                                     cmd["keep"])})
            elif op == "release":
                ref = models[cmd["key"]].release()
                reply({"ok": True, "ref": dataclasses.asdict(ref) if ref else None})
            elif op == "close":
                models.pop(cmd["key"]).close()
                reply({"ok": True})
            elif op == "memory":
                reply({"ok": True, **smaps_memory()})
            elif op == "models":
                reply({"ok": True, "models": [dataclasses.asdict(x) for x in client.models()]})
            elif op == "sessions":
                reply({"ok": True, "sessions": [dataclasses.asdict(x) for x in client.sessions()]})
            elif op == "session_id":
                reply({"ok": True, "session_id": client.session_id})
            elif op == "evict_events":
                reply({"ok": True, "events": evictions,
                       "lost": sorted(k for k, m in models.items() if m.lost)})
            elif op == "lost":
                reply({"ok": True, "lost_models": [dataclasses.asdict(x) for x in client.lost_models],
                       "lost": sorted(k for k, m in models.items() if m.lost)})
            elif op == "exit":
                client.close()
                reply({"ok": True})
                return 0
            else:
                reply({"ok": False, "code": "UNKNOWN_OP", "message": f"unknown op {op!r}"})
        except DistorchError as e:
            reply({"ok": False, "code": e.code, "message": e.message, "type": type(e).__name__})
        except Exception as e:  # report, keep serving
            reply({"ok": False, "code": "EXCEPTION", "message": f"{type(e).__name__}: {e}",
                   "traceback": traceback.format_exc()})
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
