"""Whose placement, against a real distorchd: a node whose model another
instance already placed differently attaches to that copy and says where the
weights are (the daemon's residency_*/requested_* reply fields); own_placement
gets a copy placed as asked."""

import logging

import pytest

from daemon_fixture import Daemon


@pytest.fixture
def real_env(comfy_env, tmp_path):
    from distorch import Client
    from distorch.comfy import session
    daemon = Daemon(tmp_path / "daemon")
    client = Client(socket_path=daemon.socket)
    session.set_client_factory(lambda: client)
    yield comfy_env, daemon, client
    session.drop("test over")
    session.set_client_factory(None)
    daemon.stop()


@pytest.fixture(autouse=True)
def _daemon_dir(tmp_path):
    (tmp_path / "daemon").mkdir()


def load(env, compute, allocation, own=False):
    return env.classes["DistorchUNETLoader"]().distorch_load(
        unet_name=env.names["unet_a"], compute_device=compute,
        expert_mode_allocations=allocation, own_placement=own)[0]


def test_attaching_to_another_instance_placement_is_logged_and_own_placement_avoids_it(
        real_env, caplog):
    env, daemon, client = real_env
    path = f"{env.dir}/{env.names['unet_a']}"
    # another instance placed the model all on sim:1
    daemon.ctl("load", "--model", path, "--alloc", "sim:1,*", "--compute", "sim:1", "--pin")
    with caplog.at_level(logging.INFO, logger="distorch"):
        shared = load(env, "sim:0", "sim:0,50%;cpu,*")
    (line,) = [r for r in caplog.records if "already resident" in r.getMessage()]
    text = line.getMessage()
    assert line.levelno == logging.WARNING
    assert "asked for compute sim:0, allocation 'sim:0,50%;cpu,*'" in text
    assert "placed for compute sim:1" in text and "its weights are on sim:1 " in text
    loaded = shared.model._distorch_placement.entry.loaded[0][1]
    assert loaded.shared and set(loaded.tensor_devices.values()) == {"sim:1"}

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="distorch"):
        own = load(env, "sim:0", "sim:0,50%;cpu,*", own=True)
    assert not [r for r in caplog.records if "already resident" in r.getMessage()]
    mine = own.model._distorch_placement.entry.loaded[0][1]
    assert not mine.shared and mine.model_id != loaded.model_id
    assert set(mine.tensor_devices.values()) <= {"sim:0", "cpu"} and "sim:0" in mine.tensor_devices.values()
    assert len([m for m in daemon.models() if m["name"] == env.names["unet_a"]]) == 2
