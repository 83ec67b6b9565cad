"""A stand-in for distorch.Client in unit tests: loads safetensors files into
ordinary tensors, places blocks by a fixed rule, and records every call."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Dict, List, Tuple

import comfy.utils  # the fake ComfyUI's reader


class StubLoaded:
    def __init__(self, client, path, tensors, devices, blocks, keep, model_id, shared):
        self._client = client
        self.path = path
        self.model_id = model_id
        self.lease_id = next(client._ids)
        self.shared = shared
        self.tensors = tensors
        self.tensor_devices = devices
        self.blocks = blocks
        self.keep = keep
        self.placement = {"devices": sorted(set(devices.values()))}
        self.released = False
        self.closed = False

    def close(self):
        self.closed = True

    def release(self):
        self.released = True
        self._client.released.append(self.model_id)


class StubClient:
    """Blocks go round-robin over `spread` (compute first) when an allocation
    is given, else all to compute; pinned blocks always go to compute."""

    def __init__(self, device_names=("sim:0", "sim:1", "cpu"), spread=("sim:1", "cpu")):
        self.device_names = list(device_names)
        self.spread = list(spread)
        self._ids = itertools.count(1)
        self.loads: List[dict] = []
        self.frees: List[Tuple[bool, bool]] = []
        self.soft = 0
        self.keep_calls: List[Tuple[int, bool]] = []
        self.released: List[int] = []
        self.live: List[StubLoaded] = []
        self.residencies: Dict[tuple, Tuple[int, dict]] = {}

    def load(self, path, allocation="", compute_device="", keep_loaded=False, pins=(), allow_spill=False,
             weight_dtype="", name=None, progress=None, writable=False, tensor_prefixes=()):
        self.loads.append(dict(path=path, allocation=allocation, compute=compute_device,
                               keep=keep_loaded, pins=tuple(pins), prefixes=tuple(tensor_prefixes)))
        part = tuple(sorted(set(tensor_prefixes)))  # a part of the file: a residency of its own
        key = (path, allocation, compute_device, part)
        shared = key in self.residencies and any(m.model_id == self.residencies[key][0] and not m.released
                                                 for m in self.live)
        if shared:
            model_id, tensors = self.residencies[key]
        else:
            reader = getattr(comfy.utils.load_torch_file, "__wrapped__", comfy.utils.load_torch_file)
            tensors = {n: t for n, t in reader(path).items()
                       if not part or any(n.startswith(p) for p in part)}
            if not tensors:
                raise ValueError(f"tensor prefixes {part} match no tensor of {path}")
            model_id = next(self._ids)
            self.residencies[key] = (model_id, tensors)
        devices, blocks = {}, {}
        order = [compute_device] + self.spread
        for i, name in enumerate(tensors):
            block = name.rsplit(".", 1)[0] if "." in name else name
            blocks[name] = block
            pinned = any(block == p or block.startswith(p + ".") for p in pins)
            devices[name] = compute_device if (pinned or not allocation) else order[i % len(order)]
        loaded = StubLoaded(self, path, dict(tensors), devices, blocks, keep_loaded, model_id, shared)
        self.live.append(loaded)
        return loaded

    def free(self, unload_models=True, free_memory=False):
        self.frees.append((unload_models, free_memory))
        released = []
        for m in self.live:
            if not m.keep and not m.released and unload_models:
                m.released = True
                released.append(SimpleNamespace(model_id=m.model_id, name=m.path, destroyed=True))
        return SimpleNamespace(released=released, reset_caches=free_memory)

    def soft_empty_cache(self):
        self.soft += 1
        return 0

    def set_keep_loaded(self, model, keep):
        model.keep = keep
        self.keep_calls.append((model.model_id, keep))
        return 1

    def devices(self):
        return [SimpleNamespace(name=n) for n in self.device_names]

    def close(self):
        pass
