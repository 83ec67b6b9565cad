"""The ComfyUI side's settings (distorch.comfy.settings): the TOML file, the
environment over it, and a mistake named with its key and file."""

import logging

import pytest

from distorch.comfy import settings


@pytest.fixture
def clean(monkeypatch, tmp_path):
    for key in ("DISTORCH_SOCKET", "DISTORCH_AUTOSTART", "DISTORCH_DAEMON_BIN",
                "DISTORCH_IDLE_EXIT_S", "DISTORCH_DAEMON_ARGS"):
        monkeypatch.delenv(key, raising=False)
    path = tmp_path / "comfyui.toml"
    monkeypatch.setenv("DISTORCH_CONFIG", str(path))
    settings.reset()
    yield path
    settings.reset()


def test_defaults_without_a_file(clean):
    s = settings.load()
    assert s.autostart and s.socket == "" and s.spawn.binary == "distorchd"
    assert s.spawn.idle_exit_s == 600 and s.spawn.args == () and s.source == "defaults"


def test_the_file_and_the_environment_over_it(clean, monkeypatch):
    clean.write_text('socket = "/tmp/x.sock"\n[autostart]\nenabled = false\nbinary = "/opt/distorchd"\n'
                     'idle_exit_s = 30\nargs = ["--devices", "sim:0=1GiB"]\nlog = "/tmp/d.log"\n')
    s = settings.load()
    assert (s.socket, s.autostart, s.spawn.binary, s.spawn.idle_exit_s, s.spawn.args, s.spawn.log_path) == \
        ("/tmp/x.sock", False, "/opt/distorchd", 30.0, ("--devices", "sim:0=1GiB"), "/tmp/d.log")
    monkeypatch.setenv("DISTORCH_AUTOSTART", "1")
    monkeypatch.setenv("DISTORCH_IDLE_EXIT_S", "0")
    monkeypatch.setenv("DISTORCH_DAEMON_ARGS", "--config '/a b.toml'")
    settings.reset()
    s = settings.load()
    assert s.autostart and s.spawn.idle_exit_s == 0 and s.spawn.args == ("--config", "/a b.toml")


def test_mistakes_are_named_and_ignored(clean, caplog):
    clean.write_text('sockets = "x"\n[autostart]\nidle_exit_s = "ten"\nenabled = 1\n')
    with caplog.at_level(logging.WARNING):
        s = settings.load()
    text = caplog.text
    assert f"{clean}: sockets = 'x' is not a known setting" in text
    assert "[autostart] idle_exit_s = 'ten' is not a known setting of the right type" in text
    assert "[autostart] enabled = 1" in text
    assert s.autostart and s.spawn.idle_exit_s == 600
