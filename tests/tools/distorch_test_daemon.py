"""A real distorchd for tests: started on a short temporary socket with
simulated devices, stopped with SIGTERM (which must exit 0).

    from distorch_test_daemon import TestDaemon
    with TestDaemon(devices="sim:0=1GiB,sim:1=1GiB", grace_period_s=1) as d:
        d.ctl("models", "--json")          # runs distorchctl against it
        d.ctl_json("devices")              # parsed --json output
        print(d.log())

The binaries come from $DISTORCHD and $DISTORCHCTL (CTest sets them), else
from the usual build folders. Unix socket paths are limited to 108 bytes, so
the socket lives in a short mkdtemp folder under /tmp, not pytest's tmp_path.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def find_binary(env: str, name: str) -> Optional[str]:
    """$env, else the newest <repo>/build*/... or /tmp/build*/... binary."""
    path = os.environ.get(env)
    if path:
        return path
    relative = {"distorchd": "daemon/distorchd", "distorchctl": "daemon/ctl/distorchctl"}[name]
    found = glob.glob(os.path.join(REPO, "build*", relative)) + \
        glob.glob(os.path.join("/tmp", "build*", relative))
    found = [f for f in found if os.access(f, os.X_OK)]
    return max(found, key=os.path.getmtime) if found else None


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.05) -> Any:
    """Polls predicate() until it returns something truthy; raises
    TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what} "
                               f"(last: {last!r})")
        time.sleep(interval)


class TestDaemon:
    """One distorchd process and its temporary socket folder."""

    __test__ = False  # not a pytest test class

    def __init__(self, devices: str = "sim:0=1GiB,sim:1=1GiB", grace_period_s: float = 1.0,
                 load_threads: Optional[int] = None, extra_config: str = "",
                 distorchd: Optional[str] = None, distorchctl: Optional[str] = None) -> None:
        self.distorchd = distorchd or find_binary("DISTORCHD", "distorchd")
        self.distorchctl = distorchctl or find_binary("DISTORCHCTL", "distorchctl")
        if not self.distorchd or not self.distorchctl:
            raise FileNotFoundError("distorchd/distorchctl not found: set DISTORCHD and "
                                    "DISTORCHCTL, or build them (cmake --build ...)")
        self.devices = devices
        self.dir = tempfile.mkdtemp(prefix="dt-", dir="/tmp")
        self.socket = os.path.join(self.dir, "d.sock")
        self.config = os.path.join(self.dir, "distorchd.toml")
        self.log_path = os.path.join(self.dir, "distorchd.log")
        lines = [f"grace_period_s = {grace_period_s}", "cuda = false"]
        if load_threads:
            lines.append(f"load_threads = {load_threads}")
        if extra_config:
            lines.append(extra_config)
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc: Optional[subprocess.Popen] = None
        self.returncode: Optional[int] = None

    # -- lifecycle --------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> "TestDaemon":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.distorchd, "--socket", self.socket, "--devices", self.devices,
             "--config", self.config, "--log-level", "debug"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.returncode = None

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"distorchd exited with {self.proc.returncode} at start:\n"
                                   f"{self.log()}")
            return self.accepts_connections()

        wait_until(ready, timeout, f"distorchd to serve on {self.socket}")
        return self

    def accepts_connections(self) -> bool:
        if not os.path.exists(self.socket):
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(self.socket)
                return True
            except OSError:
                return False

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait; SIGKILL after `timeout`. Returns the exit code."""
        if self.proc is None:
            return self.returncode if self.returncode is not None else 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        self.proc = None
        return self.returncode

    def kill(self) -> None:
        """SIGKILL (a crash); the socket file stays behind, as after a crash."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.returncode = self.proc.returncode
            self.proc = None

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "TestDaemon":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        self.cleanup()

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # -- distorchctl ------------------------------------------------------------
    def ctl(self, *args: str, timeout: float = 30.0, socket_path: Optional[str] = None,
            env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        """Runs distorchctl --socket SOCKET ARGS...; never raises on exit code."""
        full_env = dict(os.environ)
        full_env.pop("DISTORCH_SOCKET", None)
        if env:
            full_env.update(env)
        return subprocess.run([self.distorchctl, "--socket", socket_path or self.socket, *args],
                              capture_output=True, text=True, timeout=timeout, env=full_env,
                              stdin=subprocess.DEVNULL)

    def ctl_json(self, *args: str, timeout: float = 30.0) -> Dict[str, Any]:
        """distorchctl ARGS --json, parsed; raises with stderr if it fails."""
        done = self.ctl(*args, "--json", timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"distorchctl {' '.join(args)} exited {done.returncode}: "
                               f"{done.stderr.strip()}")
        return json.loads(done.stdout)

    # -- views used by many tests ---------------------------------------------------
    def models(self) -> List[Dict[str, Any]]:
        return self.ctl_json("models").get("models", [])

    def broker_bytes(self) -> Dict[str, int]:
        """device -> bytes its arenas hold (ListDevices.broker_bytes)."""
        return {d["name"]: int(d["broker_bytes"]) for d in self.ctl_json("devices")["devices"]}

    def status_broker_bytes(self) -> Dict[str, int]:
        """device -> bytes, from Status (devices holding nothing are absent)."""
        return {d["device"]: int(d["bytes"]) for d in self.ctl_json("status")["broker_bytes"]}
