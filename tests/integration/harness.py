"""Helpers for the integration tests: client worker processes and model files.

A Worker is a real /usr/bin/python3 process running client_worker.py, which
uses distorch.Client against the test daemon; the test sends it JSON commands.
Model files are written with tests/tools/make_model.py (write_safetensors)
when it is there, else with the small writer below.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
WORKER = os.path.join(HERE, "client_worker.py")

try:  # another engineer's generator; ours below is the fallback
    from make_model import write_safetensors as _write_safetensors  # type: ignore
except ImportError:  # pragma: no cover - depends on the checkout
    _write_safetensors = None


def python_env() -> Dict[str, str]:
    """Environment for child Python processes: the client package and tools."""
    env = dict(os.environ)
    paths = [os.path.join(REPO, "client_py"), os.path.join(REPO, "tests", "tools")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("DISTORCH_SOCKET", None)
    return env


# ------------------------------------------------------------------ workers


class WorkerError(AssertionError):
    pass


class Worker:
    """One client process. call() sends a command and returns its reply."""

    def __init__(self, socket_path: str, name: str, log_dir: str) -> None:
        self.name = name
        self.stderr_path = os.path.join(log_dir, f"worker-{name}.stderr")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, WORKER, socket_path, name], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr, env=python_env(), text=True, bufsize=1)
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.hello: Dict[str, Any] = {}
        self.progress: List[Tuple[int, int]] = []

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_ready(self, timeout: float = 60.0) -> Dict[str, Any]:
        self.hello = self._next(timeout, "ready")
        return self.hello

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def session_id(self) -> int:
        return int(self.hello["session_id"])

    def _next(self, timeout: float, what: str) -> Dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise WorkerError(f"worker {self.name}: no reply to {what} within {timeout:g} s\n"
                              f"{self.stderr()}") from None
        if line is None:
            raise WorkerError(f"worker {self.name} exited ({self.proc.poll()}) before replying "
                              f"to {what}\n{self.stderr()}")
        return json.loads(line)

    def send(self, op: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()

    def receive(self, what: str = "reply", timeout: float = 60.0) -> Dict[str, Any]:
        """The next reply; progress lines before it are collected in .progress."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self._next(max(0.01, deadline - time.monotonic()), what)
            if "progress" in msg:
                self.progress.append(tuple(msg["progress"]))
                continue
            return msg

    def next_progress(self, timeout: float) -> Optional[Dict[str, Any]]:
        """The next line (progress or reply), or None after `timeout`."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        return json.loads(line) if line is not None else None

    def call(self, op: str, timeout: float = 60.0, check: bool = True, **args: Any) -> Dict[str, Any]:
        self.send(op, **args)
        msg = self.receive(op, timeout)
        if check and not msg.get("ok"):
            raise WorkerError(f"worker {self.name}: {op} failed: {msg}\n{self.stderr()}")
        return msg

    def stderr(self) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return f"--- stderr of worker {self.name} ---\n{text[-6000:]}" if text else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            try:
                self.send("exit")
                self.proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        self._stderr.close()


# ------------------------------------------------------------------ model files


def _own_write_safetensors(path: str, tensors: Mapping[str, np.ndarray],
                           dtypes: Optional[Mapping[str, str]] = None) -> int:
    names = {"float64": "F64", "float32": "F32", "float16": "F16", "int8": "I8", "uint8": "U8",
             "int16": "I16", "int32": "I32", "int64": "I64", "bool": "BOOL"}
    header: Dict[str, Any] = {}
    offset = 0
    for name, array in tensors.items():
        dtype = (dtypes or {}).get(name) or names[array.dtype.name]
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for array in tensors.values():
            f.write(np.ascontiguousarray(array).tobytes())
        return f.tell()


def write_model(path: str, tensors: Mapping[str, np.ndarray],
                dtypes: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """Writes a safetensors file (data in mapping order); returns the expected
    sha256 of each tensor's bytes."""
    if _write_safetensors is not None:
        _write_safetensors(path, tensors, dtypes=dtypes)
    else:
        _own_write_safetensors(path, tensors, dtypes)
    return {name: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
            for name, a in tensors.items()}


def layered_tensors(layers: int, layer_bytes: int, seed: int,
                    extras: bool = False) -> Dict[str, np.ndarray]:
    """`layers` blocks "layers.N.proj" (an F32 weight of ~layer_bytes and a
    small bias), in order; extras adds tensors of every other dtype."""
    rng = np.random.default_rng(seed)
    cols = 256
    rows = max(1, layer_bytes // (4 * cols))
    out: Dict[str, np.ndarray] = {}
    for i in range(layers):
        out[f"layers.{i}.proj.weight"] = rng.standard_normal((rows, cols), dtype=np.float32)
        out[f"layers.{i}.proj.bias"] = rng.standard_normal((cols,), dtype=np.float32)
    if extras:
        out["extra.f64"] = rng.standard_normal((64, 8))
        out["extra.f16"] = rng.standard_normal((32, 16)).astype(np.float16)
        out["extra.bf16"] = rng.integers(0, 1 << 16, (8, 8), dtype=np.uint16)  # BF16 bits
        out["extra.i8"] = rng.integers(-128, 127, (100,), dtype=np.int8)
        out["extra.u8"] = rng.integers(0, 255, (3, 5, 7), dtype=np.uint8)
        out["extra.i16"] = rng.integers(-30000, 30000, (17,), dtype=np.int16)
        out["extra.i32"] = rng.integers(-1 << 30, 1 << 30, (9, 3), dtype=np.int32)
        out["extra.i64"] = rng.integers(-1 << 60, 1 << 60, (5,), dtype=np.int64)
        out["extra.bool"] = rng.integers(0, 2, (11,)).astype(bool)
    return out


EXTRA_DTYPES = {"extra.bf16": "BF16"}


def random_blob_model(path: str, total_bytes: int, tensors: int = 64, seed: int = 7,
                      drop_cache: bool = True) -> int:
    """A big U8 model of random bytes written in chunks (little memory), then
    dropped from the page cache so the daemon reads it from disk (slower:
    there is time to kill a client mid-load). Returns the data size."""
    per = total_bytes // tensors
    header: Dict[str, Any] = {}
    for i in range(tensors):
        header[f"blocks.{i}.weight"] = {"dtype": "U8", "shape": [per],
                                        "data_offsets": [i * per, (i + 1) * per]}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(seed)
    chunk = rng.bytes(8 << 20)  # repeated: random enough, cheap to make
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        left = per * tensors
        while left:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n
        f.flush()
        os.fsync(f.fileno())
        if drop_cache:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return per * tensors


def raw_safetensors(path: str, header: bytes, data: bytes = b"",
                    declared_length: Optional[int] = None, sparse_size: Optional[int] = None) -> None:
    """A safetensors-shaped file with exactly this header (hostile inputs)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header) if declared_length is None else declared_length))
        f.write(header)
        f.write(data)
    if sparse_size is not None:
        os.truncate(path, sparse_size)


def json_header(entries: Mapping[str, Any]) -> bytes:
    raw = json.dumps(entries).encode()
    return raw + b" " * (-len(raw) % 8)
