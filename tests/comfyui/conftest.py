"""Puts the fake ComfyUI first on sys.path and gives each unit test a clean
distorch.comfy setup on it."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
for path in (os.path.join(HERE, "fake_comfy"), HERE, os.path.join(REPO, "client_py"),
             os.path.join(REPO, "tests", "tools")):
    if path not in sys.path:
        sys.path.insert(0, path)

import pytest  # noqa: E402


@pytest.fixture
def comfy_env(tmp_path, monkeypatch):
    """A fresh fake ComfyUI with distorch installed and a StubClient."""
    import comfy.model_management as mm
    import folder_paths
    import nodes
    import distorch.comfy as dc
    from distorch.comfy import registry, session
    from stub_client import StubClient
    import tiny_models

    names = tiny_models.write_all(str(tmp_path))
    monkeypatch.setattr(folder_paths, "MODELS_DIR", str(tmp_path))
    client = StubClient()
    session.set_client_factory(lambda: client)
    registry.REGISTRY.__init__()
    mm.current_loaded_models.clear()
    mm.CALLS.clear()
    classes, titles = dc.setup(nodes.NODE_CLASS_MAPPINGS)
    env = type("Env", (), dict(client=client, names=names, classes=classes, titles=titles,
                               dir=str(tmp_path)))
    yield env
    dc.teardown()
    session.set_client_factory(None)
    mm.current_loaded_models.clear()
    registry.REGISTRY.__init__()


@pytest.fixture
def daemon(tmp_path):
    """A real distorchd on sim: devices (daemon_fixture.Daemon), stopped and
    checked for a clean exit after the test."""
    from daemon_fixture import Daemon
    d = Daemon(tmp_path)
    yield d
    d.stop()
