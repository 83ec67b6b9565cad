"""Auto-start with a real distorchd: two ComfyUI-shaped processes (comfy_worker.py)
start at the same moment with no daemon on their socket; exactly one daemon is
started, both sessions are on it, it outlives them and exits when idle."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import tiny_models
from daemon_fixture import _binary

HERE = os.path.dirname(os.path.abspath(__file__))
IDLE_EXIT_S = 2


def daemons_on(socket_path):
    """pids of distorchd processes whose command line names socket_path."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"distorchd" and socket_path.encode() in argv:
            pids.append(int(entry))
    return pids


@pytest.fixture
def autostart_env(tmp_path):
    distorchd = _binary("DISTORCHD", "/tmp/build-comfy/daemon/distorchd")
    distorchctl = _binary("DISTORCHCTL", "/tmp/build-comfy/daemon/ctl/distorchctl")
    run_dir = tmp_path / "run"  # does not exist yet: the spawner makes it
    socket_path = str(run_dir / "distorchd.sock")
    config = tmp_path / "distorchd.toml"
    config.write_text("grace_period_s = 1\n")
    models = tmp_path / "models"
    models.mkdir()
    tiny_models.write_all(str(models))
    env = dict(os.environ, DISTORCH_SOCKET=socket_path, DISTORCH_DAEMON_BIN=distorchd,
               DISTORCH_DAEMON_ARGS=f"--config {config} --devices sim:0=1GiB,sim:1=1GiB",
               DISTORCH_IDLE_EXIT_S=str(IDLE_EXIT_S), DISTORCH_CONFIG=str(tmp_path / "none.toml"),
               FAKE_COMFY_MODELS=str(models))
    env.pop("DISTORCH_AUTOSTART", None)
    workers = []
    yield dict(env=env, socket=socket_path, ctl=distorchctl, distorchd=distorchd,
               log=str(run_dir / "distorchd.log"), workers=workers)
    for w in workers:
        if w.poll() is None:
            w.kill()
            w.wait()
    for pid in daemons_on(socket_path):  # only the daemons started for this test's socket
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 10
        while pid in daemons_on(socket_path) and time.time() < deadline:
            time.sleep(0.1)
        if pid in daemons_on(socket_path):
            os.kill(pid, signal.SIGKILL)
    # The spawned daemons are not our children, so their exit status is out of reach; a
    # sanitizer's report (scripts/check-sanitizers.sh) lands in their log instead.
    log = run_dir / "distorchd.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    assert "Sanitizer" not in text and "runtime error:" not in text, text[-20000:]


def start_worker(env):
    return subprocess.Popen([sys.executable, os.path.join(HERE, "comfy_worker.py")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def ask(worker, **cmd):
    worker.stdin.write(json.dumps(cmd) + "\n")
    worker.stdin.flush()
    reply = json.loads(worker.stdout.readline())
    assert reply.pop("ok"), reply.get("trace")
    return reply


def test_two_instances_at_once_start_exactly_one_daemon_that_exits_when_idle(autostart_env):
    s = autostart_env
    assert not os.path.exists(s["socket"]) and not daemons_on(s["socket"])
    workers = [start_worker(s["env"]) for _ in range(2)]  # the same moment
    s["workers"].extend(workers)
    pids = [json.loads(w.stdout.readline())["pid"] for w in workers]

    daemons = daemons_on(s["socket"])
    assert len(daemons) == 1, daemons
    sessions = json.loads(subprocess.run(
        [s["ctl"], "--socket", s["socket"], "--json", "sessions"], check=True,
        capture_output=True, text=True, timeout=30).stdout)
    sessions = sessions.get("sessions", []) if isinstance(sessions, dict) else sessions
    comfy = [x for x in sessions if x.get("client_name") == "ComfyUI"]
    assert sorted(int(x["pid"]) for x in comfy) == sorted(pids), sessions
    # the daemon is detached (its own session) and logs next to its socket
    assert os.getsid(daemons[0]) == daemons[0]
    with open(s["log"]) as f:
        log = f.read()
    assert log.count("started by pid") == 1

    # both load through it: one residency, shared
    prompt = {"1": {"class_type": "DistorchUNETLoader",
                    "inputs": {"unet_name": "unet_a.safetensors", "weight_dtype": "default",
                               "compute_device": "sim:0", "expert_mode_allocations": "sim:0,50%;sim:1,*"}}}
    for w in workers:
        ask(w, op="prompt", prompt=prompt, node="1")
    inspected = [ask(w, op="inspect", node="1") for w in workers]
    assert inspected[0]["model_id"] == inspected[1]["model_id"] and inspected[1]["shared"]

    for w in workers:
        w.stdin.close()
        w.wait(timeout=30)
        stderr = w.stderr.read()
        assert "Traceback" not in stderr, stderr
    # it outlives the ComfyUI processes that started it ...
    assert daemons_on(s["socket"]) == daemons
    # ... and exits once idle: no sessions (after the 1 s grace) and no pinned models
    deadline = time.time() + IDLE_EXIT_S + 1 + 15
    while daemons_on(s["socket"]) and time.time() < deadline:
        time.sleep(0.2)
    assert not daemons_on(s["socket"]), "the spawned distorchd did not exit when idle"


def test_autostart_off_leaves_an_allocation_node_failing(autostart_env):
    s = autostart_env
    env = dict(s["env"], DISTORCH_AUTOSTART="0")
    worker = start_worker(env)
    s["workers"].append(worker)
    json.loads(worker.stdout.readline())
    prompt = {"1": {"class_type": "DistorchUNETLoader",
                    "inputs": {"unet_name": "unet_a.safetensors", "weight_dtype": "default",
                               "compute_device": "sim:0", "expert_mode_allocations": "sim:0,50%;sim:1,*"}}}
    worker.stdin.write(json.dumps({"op": "prompt", "prompt": prompt, "node": "1"}) + "\n")
    worker.stdin.flush()
    reply = json.loads(worker.stdout.readline())
    assert not reply["ok"]
    assert "auto-start is off" in reply["error"] and s["socket"] in reply["error"]
    assert not daemons_on(s["socket"])


def test_started_daemon_is_logged_and_a_restart_changes_the_connection(autostart_env, monkeypatch,
                                                                       caplog):
    """In this process: the first use starts a daemon (logged with its pid and
    log file); when it is gone, the next change check starts another and
    reports a new connection identity (so the loader nodes run again)."""
    import logging
    from distorch.comfy import session
    s = autostart_env
    for key in ("DISTORCH_SOCKET", "DISTORCH_DAEMON_BIN", "DISTORCH_DAEMON_ARGS", "DISTORCH_CONFIG"):
        monkeypatch.setenv(key, s["env"][key])
    monkeypatch.setenv("DISTORCH_IDLE_EXIT_S", "0")
    monkeypatch.delenv("DISTORCH_AUTOSTART", raising=False)
    session.set_client_factory(None)
    try:
        with caplog.at_level(logging.INFO, logger="distorch"):
            first = session.connection_identity()
        (first_pid,) = daemons_on(s["socket"])
        started = [r.getMessage() for r in caplog.records if "started distorchd" in r.getMessage()]
        assert len(started) == 1
        assert f"(pid {first_pid}) for this user at {s['socket']}" in started[0]
        assert f"log: {s['log']}" in started[0] and "never exits by itself" in started[0]
        assert session.connection_identity() == first

        os.kill(first_pid, signal.SIGTERM)
        deadline = time.time() + 10
        while (daemons_on(s["socket"]) or not session.current()._session.broken.is_set()) \
                and time.time() < deadline:
            time.sleep(0.05)
        second = session.connection_identity()
        (second_pid,) = daemons_on(s["socket"])
        assert second != first and second != "none" and second_pid != first_pid
    finally:
        session.drop("test over")
        session.set_client_factory(None)
