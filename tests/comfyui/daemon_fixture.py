"""A real distorchd on a temporary socket with sim: devices (integration tests)."""

import json
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _binary(env_name, fallback):
    path = os.environ.get(env_name) or fallback
    if not path or not os.path.exists(path):
        pytest.skip(f"{env_name} is not set to a built binary")
    return path


class Daemon:
    def __init__(self, tmp_path):
        self.dir = str(tmp_path)
        self.socket = os.path.join(self.dir, "d.sock")
        self.distorchd = _binary("DISTORCHD", "/tmp/build-comfy/daemon/distorchd")
        self.distorchctl = _binary("DISTORCHCTL", "/tmp/build-comfy/daemon/ctl/distorchctl")
        config = os.path.join(self.dir, "distorchd.toml")
        with open(config, "w") as f:
            f.write("grace_period_s = 1\n")
        self.log = open(os.path.join(self.dir, "distorchd.log"), "w")
        self.proc = subprocess.Popen([self.distorchd, "--config", config, "--socket", self.socket,
                                      "--devices", "sim:0=1GiB,sim:1=1GiB"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("distorchd did not start: " + open(self.log.name).read()[-2000:])
            time.sleep(0.05)

    def ctl(self, *args):
        out = subprocess.run([self.distorchctl, "--socket", self.socket, "--json", *args],
                             check=True, capture_output=True, text=True, timeout=30)
        return json.loads(out.stdout)

    def models(self):
        doc = self.ctl("models")
        models = doc.get("models", []) if isinstance(doc, dict) else doc
        for m in models:  # protobuf's JSON writes uint64 as strings
            m["model_id"] = int(m["model_id"])
        return models

    def stop(self):
        """SIGTERM, which must exit 0: a crash, or a sanitizer's leak or UB report
        (scripts/check-sanitizers.sh), fails the test with the log's tail."""
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        if rc != 0:
            with open(self.log.name, errors="replace") as f:
                text = f.read()[-20000:]
            print(f"\n--- distorchd log ({self.log.name}) ---\n{text}")
            raise AssertionError(f"distorchd exited with {rc} on SIGTERM (log above)")


class Worker:
    """A ComfyUI-shaped process (comfy_worker.py, or another worker script in
    this folder) talking JSON lines."""

    def __init__(self, daemon, models_dir, script="comfy_worker.py"):
        env = dict(os.environ, DISTORCH_SOCKET=daemon.socket, FAKE_COMFY_MODELS=models_dir)
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, script)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        first = json.loads(self.proc.stdout.readline())
        assert first["ready"]
        self.pid = first["pid"]

    def __call__(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        assert reply.pop("ok"), reply.get("trace")
        return reply

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
