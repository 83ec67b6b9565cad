"""idle_exit_s / --idle-exit-s: a per-user distorchd a client started on
demand exits by itself (status 0, socket removed, one log line) once it has
had no session and no pinned model for that long; never while a session is
open or a model is pinned."""

from __future__ import annotations

import os
import subprocess
import time

from distorch import Client
from distorch_test_daemon import TestDaemon, wait_until
from harness import layered_tensors, write_model

MIB = 1 << 20
IDLE_LINE = "idle for 1s with no sessions and no pinned models: exiting"


def idle_daemon(**kwargs) -> TestDaemon:
    return TestDaemon(grace_period_s=0.5, extra_config="idle_exit_s = 1", **kwargs)


def exited(d: TestDaemon) -> bool:
    return d.proc is not None and d.proc.poll() is not None


def assert_clean_idle_exit(d: TestDaemon, timeout: float) -> None:
    wait_until(lambda: exited(d), timeout, "distorchd to exit when idle")
    assert d.stop() == 0, d.log()
    assert not os.path.exists(d.socket)
    assert not os.path.exists(d.socket + ".fd")
    assert d.log().count(IDLE_LINE) == 1, d.log()


def test_exits_after_its_last_session_ends():
    d = idle_daemon().start()
    try:
        client = Client(socket_path=d.socket, client_name="idle-test", connect_timeout=10.0)
        assert client.session_id > 0
        time.sleep(2.5)  # well past idle_exit_s: an open session keeps it
        assert not exited(d), d.log()
        client.close()
        # Grace period (0.5 s) + idle time (1 s) + polling.
        assert_clean_idle_exit(d, timeout=10)
    finally:
        d.stop()
        d.cleanup()


def test_a_pinned_model_keeps_it(scratch):
    path = os.path.join(scratch, "pinned.safetensors")
    write_model(path, layered_tensors(4, 1 * MIB, seed=5))
    d = idle_daemon().start()
    try:
        done = d.ctl("load", "--model", path, "--alloc", "cpu,*", "--pin")
        assert done.returncode == 0, done.stderr
        time.sleep(2.5)
        assert not exited(d), d.log()
        assert len(d.models()) == 1
        done = d.ctl("evict", "pinned.safetensors")
        assert done.returncode == 0, done.stderr
        assert_clean_idle_exit(d, timeout=10)
    finally:
        d.stop()
        d.cleanup()


def test_nobody_comes():
    # Started on demand but never used (the client that spawned it died).
    d = idle_daemon().start()
    try:
        assert_clean_idle_exit(d, timeout=10)
    finally:
        d.stop()
        d.cleanup()


def test_the_flag_overrides_the_config():
    d = TestDaemon(extra_config="idle_exit_s = 0")
    try:
        log = open(d.log_path, "ab")
        proc = subprocess.Popen(
            [d.distorchd, "--socket", d.socket, "--devices", d.devices, "--config", d.config,
             "--idle-exit-s", "1"], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        log.close()
        assert proc.wait(15) == 0, d.log()
        assert IDLE_LINE in d.log()
        assert not os.path.exists(d.socket)

        bad = subprocess.run([d.distorchd, "--socket", d.socket, "--idle-exit-s", "soon",
                              "--check-config"], capture_output=True, text=True, timeout=30)
        assert bad.returncode == 1
        assert bad.stderr.strip() == ("distorchd: --idle-exit-s: must be a number of seconds "
                                      ">= 0 (0 = never exit), got 'soon'")
        # Zero (the default) never exits: the system daemon's setting.
        d.start()
        time.sleep(2)
        assert not exited(d)
        assert d.stop() == 0
    finally:
        d.stop()
        d.cleanup()
