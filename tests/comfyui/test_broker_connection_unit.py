"""The broker connection as the loader nodes see it, on the fake ComfyUI with
stub clients: a daemon that appears or restarts is picked up by the next
prompt; a shortage is made up by freeing this process's ComfyUI models and
retried once; a load that attaches to another request's placement says so, and
own_placement asks for a placement of its own."""

import itertools
import logging
import re

import pytest
import torch

import comfy.model_management as mm
import comfy.model_patcher
import comfy.sd
import nodes
from execution import PromptExecutor
from stub_client import StubClient

from distorch.errors import DistorchError


def unet_node(env, role="unet_a", allocation="", compute="sim:0", own=None):
    inputs = {"unet_name": env.names[role], "weight_dtype": "default", "compute_device": compute,
              "virtual_vram_gb": 0.0, "donor_device": "cpu",
              "expert_mode_allocations": allocation, "keep_loaded": False}
    if own is not None:
        inputs["own_placement"] = own
    return {"class_type": "DistorchUNETLoader", "inputs": inputs}


def mappings(env):
    return {**nodes.NODE_CLASS_MAPPINGS, **env.classes}


_streams = itertools.count(1)


class RestartableStub(StubClient):
    """A stub with the real client's session surface: session_id, and a
    `_session` object replaced when the daemon restarts (session ids start
    again at 1, the old leases are lost)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self._session = object()
        self._sid = 1

    @property
    def session_id(self):
        return self._sid

    def restart_daemon(self):
        self._session = object()
        self._sid = 1
        for m in self.live:
            m.lost = True


def test_daemon_appearing_later_reruns_the_loader_through_it(comfy_env, monkeypatch, caplog):
    from distorch.comfy import session
    env = comfy_env
    monkeypatch.setenv("DISTORCH_SOCKET", env.dir + "/d.sock")
    available = {"client": None}
    session.set_client_factory(lambda: available["client"])
    prompt = {"1": unet_node(env)}
    ex = PromptExecutor(mappings(env))
    with caplog.at_level(logging.WARNING):
        first = ex.execute(prompt, "1")[0]
        assert type(first).__name__ == "ModelPatcher"  # no allocation: stock, on its device
        assert ex.execute(prompt, "1")[0] is first     # cached while nothing changed
    assert len([r for r in caplog.records if "distorchd is not running" in r.getMessage()]) == 1

    stub = RestartableStub()
    available["client"] = stub
    second = ex.execute(prompt, "1")[0]
    assert ex.executed == ["1", "1"] and stub.loads and second is not first
    assert type(second).__name__ == "DistorchModelPatcher"
    assert ex.execute(prompt, "1")[0] is second and len(stub.loads) == 1

    # the daemon restarts: the next prompt loads again through the new one
    stub.restart_daemon()
    third = ex.execute(prompt, "1")[0]
    assert len(stub.loads) == 2 and third is not second
    assert ex.execute(prompt, "1")[0] is third


def test_an_allocation_without_a_daemon_fails_the_prompt(comfy_env, monkeypatch):
    from distorch.comfy import session
    env = comfy_env
    monkeypatch.setenv("DISTORCH_SOCKET", env.dir + "/d.sock")
    session.set_client_factory(lambda: None)
    ex = PromptExecutor(mappings(env))
    with pytest.raises(session.BrokerUnavailable, match="distorchd --socket .*d.sock"):
        ex.execute({"1": unet_node(env, allocation="sim:0,50%;sim:1,*")}, "1")
    assert not ex.executed


# ---------------------------------------------------------------- make room

def fmt(n):
    """distorchd's FormatBytes."""
    if n < 1024:
        return f"{int(n)} B"
    value, units = n / 1024, ["KiB", "MiB", "GiB", "TiB"]
    unit = 0
    while value >= 1023.995 and unit + 1 < len(units):
        value /= 1024
        unit += 1
    return f"{value:.2f} {units[unit]}"


def comfy_held(device):
    return sum(lm.model_loaded_memory() for lm in mm.current_loaded_models
               if lm.device == device and lm.model is not None)


class SimDeviceStub(StubClient):
    """sim:0 has `capacity` bytes, shared by the broker's models and by what
    ComfyUI's models in this process hold on it (a sim device is torch's cpu
    here); a load that does not fit is refused with the daemon's message."""

    def __init__(self, capacity, **kw):
        super().__init__(**kw)
        self.capacity = capacity
        self.scale = 1  # how many times its file size a load needs
        self.refused = 0

    def free_bytes(self):
        return self.capacity - comfy_held(torch.device("cpu"))

    def load(self, path, **kw):
        reader = comfy.utils.load_torch_file.__wrapped__ if hasattr(comfy.utils.load_torch_file, "__wrapped__") \
            else comfy.utils.load_torch_file
        need = self.scale * sum(t.numel() * t.element_size() for t in reader(path).values())
        broker = sum(sum(t.numel() * t.element_size() for t in m.tensors.values())
                     for m in self.live if not m.released)
        available = self.free_bytes() - broker  # the broker's models are not free
        if need > available:
            self.refused += 1
            raise DistorchError("RESOURCE_EXHAUSTED",
                                f"sim:0 is short by {fmt(need - available)}: placing {fmt(need)}, "
                                f"{fmt(available)} available (free {fmt(available)} - reserve 0 B)")
        return super().load(path, **kw)


def comfy_model_on_cpu():
    """A model loaded the stock ComfyUI way that holds memory on torch's cpu
    (where a sim device's tensors live in this process)."""
    stock = comfy.model_patcher.ModelPatcher(comfy.sd.TinyUNet(dtype=torch.float32),
                                             load_device=torch.device("cpu"),
                                             offload_device=torch.device("cpu"))
    mm.load_models_gpu([stock])
    assert comfy_held(torch.device("cpu")) > 0
    return stock


@pytest.fixture
def sim_short(comfy_env, monkeypatch):
    from distorch.comfy import session
    held = comfy_model_on_cpu()
    size = comfy_held(torch.device("cpu"))
    client = SimDeviceStub(capacity=int(size * 1.5))
    session.set_client_factory(lambda: client)
    # ComfyUI's free-memory question, on the same device model as the stub
    real = mm.get_free_memory
    monkeypatch.setattr(mm, "get_free_memory", lambda dev=None, torch_free_too=False:
                        client.free_bytes() if dev == torch.device("cpu") else real(dev, torch_free_too))
    yield comfy_env, client, held
    mm.current_loaded_models.clear()


def test_a_shortage_frees_this_process_comfyui_models_and_retries_once(sim_short, caplog):
    env, client, held = sim_short
    mm.CALLS.clear()
    with caplog.at_level(logging.INFO):
        model = env.classes["DistorchUNETLoader"]().distorch_load(
            unet_name=env.names["unet_a"], compute_device="sim:0")[0]
    assert client.refused == 1 and len(client.loads) == 1
    assert type(model).__name__ == "DistorchModelPatcher"
    assert held not in [lm.model for lm in mm.current_loaded_models]  # unloaded through ComfyUI
    frees = [c for c in mm.CALLS if isinstance(c, tuple) and c[0] == "free_memory"]
    assert frees == [("free_memory", "cpu", 0)]
    assert mm.CALLS.index(frees[0]) < mm.CALLS.index("soft_empty_cache")
    lines = [r.getMessage() for r in caplog.records if "the broker was short" in r.getMessage()]
    assert len(lines) == 1
    assert "sim:0 short by" in lines[0] and "ComfyUI unloaded TinyUNet (" in lines[0]
    assert "retrying the load once" in lines[0]


def test_a_shortage_with_nothing_of_ours_to_free_is_not_retried(sim_short):
    env, client, held = sim_short
    mm.unload_model_and_clones(held)
    client.capacity = 100  # short, and nothing of this ComfyUI's holds the memory
    mm.CALLS.clear()
    with pytest.raises(RuntimeError, match="sim:0 is short by"):
        env.classes["DistorchUNETLoader"]().distorch_load(unet_name=env.names["unet_a"],
                                                          compute_device="sim:0")
    assert client.refused == 1
    assert not [c for c in mm.CALLS if isinstance(c, tuple) and c[0] == "free_memory"]


def test_a_shortage_that_freeing_does_not_cure_fails_after_one_retry(sim_short):
    env, client, held = sim_short
    client.scale = 3  # still short once ours are gone
    with pytest.raises(RuntimeError, match="sim:0 is short by"):
        env.classes["DistorchUNETLoader"]().distorch_load(unet_name=env.names["unet_a"],
                                                          compute_device="sim:0")
    assert client.refused == 2  # the load and one retry


def test_shortage_messages_parse():
    from distorch.comfy import make_room
    e = DistorchError("RESOURCE_EXHAUSTED",
                      "sim:1 is short by 1.50 GiB: placing 3.00 GiB (1.00 GiB of it spilled from "
                      "sim:0, sim:2), 1.50 GiB available (free 3.50 GiB - reserve 2.00 GiB - broker "
                      "0 B); lower the allocation or allow spilling to cpu")
    (s,) = make_room.shortages(e)
    assert s.device == "sim:1" and abs(s.missing - 1.5 * 2**30) < 2**23
    assert abs(s.needed_free - 5 * 2**30) < 2**24  # placing + reserve + broker
    (n,) = make_room.shortages(DistorchError(
        "RESOURCE_EXHAUSTED", "sim:1 is short by 1.50 GiB: placing 3.00 GiB, 1.50 GiB available "
        "(free 3.50 GiB - reserve 2.00 GiB); lower the allocation or allow spilling to cpu"))
    assert n.device == "sim:1" and abs(n.missing - 1.5 * 2**30) < 2**23
    assert abs(n.needed_free - 5 * 2**30) < 2**24  # placing + reserve
    (a,) = make_room.shortages(DistorchError("RESOURCE_EXHAUSTED",
                                             "cuda:0: cannot allocate 3.00 GiB, 1.00 GiB free"))
    assert a.device == "cuda:0" and abs(a.missing - 2 * 2**30) < 2**24
    assert make_room.shortages(DistorchError("INVALID_ARGUMENT", "sim:1 is short by 1 B")) == []


# ---------------------------------------------------------------- someone else's placement

class ResidencyStub(StubClient):
    """Like distorchd: one residency per file, whatever the request; the first
    load's placement is what every later load attaches to, unless it asks for
    its own placement."""

    def load(self, path, allocation="", compute_device="", own_placement=False, **kw):
        first = next((m for m in self.live if m.path == path and not m.released), None)
        if first is None or own_placement:
            loaded = super().load(path, allocation=allocation, compute_device=compute_device, **kw)
            loaded.placement = {"compute_device": compute_device, "allocation": allocation, "notes": []}
            self.loads[-1]["own_placement"] = own_placement
            return loaded
        self.loads.append(dict(path=path, allocation=allocation, compute=compute_device,
                               own_placement=own_placement))
        loaded = type(first)(self, path, first.tensors, dict(first.tensor_devices), first.blocks,
                             kw.get("keep_loaded", False), first.model_id, True)
        loaded.placement = dict(first.placement)
        self.live.append(loaded)
        return loaded


@pytest.fixture
def residency_env(comfy_env):
    from distorch.comfy import session
    client = ResidencyStub()
    session.set_client_factory(lambda: client)
    return comfy_env, client


def test_attaching_to_another_placement_says_where_the_weights_are(residency_env, caplog):
    env, client = residency_env
    node = env.classes["DistorchUNETLoader"]
    with caplog.at_level(logging.INFO):
        first = node().distorch_load(unet_name=env.names["unet_a"], compute_device="sim:0",
                                     expert_mode_allocations="sim:0,50%;sim:1,*")
        assert not [r for r in caplog.records if "already resident" in r.getMessage()]
        second = node().distorch_load(unet_name=env.names["unet_a"], compute_device="sim:1",
                                      expert_mode_allocations="sim:1,*")
    assert client.live[-1].shared and first and second
    (line,) = [r for r in caplog.records if "already resident" in r.getMessage()]
    text = line.getMessage()
    assert line.levelno == logging.WARNING
    assert "asked for compute sim:1, allocation 'sim:1,*'" in text
    assert "placed for compute sim:0, allocation 'sim:0,50%;sim:1,*'" in text
    assert re.search(r"its weights are on cpu \d+ B, sim:0 \d+ B, sim:1 [\d.]+ KiB\.", text)
    assert "Turn on own_placement" in text


def test_the_same_request_attaching_says_nothing(residency_env, caplog):
    env, client = residency_env
    # another instance made the residency with the very same request
    other = client.load(env.dir + "/" + env.names["unet_a"], allocation="sim:0,50%;sim:1,*",
                        compute_device="sim:0")
    with caplog.at_level(logging.INFO):
        model = env.classes["DistorchUNETLoader"]().distorch_load(
            unet_name=env.names["unet_a"], compute_device="sim:0",
            expert_mode_allocations="sim:0,50%;sim:1,*")
    assert client.live[-1].shared and model and other
    assert "attached to an existing residency" in caplog.text
    assert not [r for r in caplog.records if "already resident" in r.getMessage()]


def test_own_placement_asks_the_broker_for_a_placement_of_its_own(residency_env, caplog):
    env, client = residency_env
    node = env.classes["DistorchUNETLoader"]
    assert node.INPUT_TYPES()["optional"]["own_placement"] == ("BOOLEAN", {"default": False})
    with caplog.at_level(logging.INFO):
        first = node().distorch_load(unet_name=env.names["unet_a"], compute_device="sim:0")
        model = node().distorch_load(unet_name=env.names["unet_a"], compute_device="sim:1",
                                     own_placement=True)[0]
    assert [load["own_placement"] for load in client.loads] == [False, True]
    assert not client.live[-1].shared
    assert set(client.live[-1].tensor_devices.values()) == {"sim:1"}
    assert not [r for r in caplog.records if "already resident" in r.getMessage()]
    assert model.model._distorch_placement.compute == "sim:1" and first


def test_own_placement_with_a_client_that_cannot_ask_fails(comfy_env):
    with pytest.raises(RuntimeError, match="cannot ask distorchd for a placement of its own"):
        comfy_env.classes["DistorchUNETLoader"]().distorch_load(
            unet_name=comfy_env.names["unet_a"], compute_device="sim:0", own_placement=True)
