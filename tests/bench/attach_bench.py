#!/usr/bin/env python3
"""Attach benchmark: a second client maps a model that is already resident.

A real distorchd (tests/tools/distorch_test_daemon.py) loads a safetensors
model into a cpu arena for a first client (keep_loaded). A second client, a
fresh Python process with torch and distorch already imported and connected,
then calls Client.load() on the same file: the daemon answers "shared", the
client receives the arena's memfd over the fd channel, maps it and builds one
tensor view per tensor. Measured against a fresh in-process load of the same
page-cached file in that process (read + torch.frombuffer per tensor, as
safetensors.torch.load_file does), target >= 50x faster; and the second
client's resident memory (VmRSS) may grow by < 5% of the model size.

    attach_bench.py           # quick: 256 MiB model
    attach_bench.py --full    # 2 GiB, the numbers in docs/performance.md

Prints one JSON object per figure (tests/bench/bench_json.h's keys).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from typing import Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PYTHONPATH = [os.path.join(REPO, "client_py"), os.path.join(REPO, "tests", "tools")]
sys.path[:0] = [p for p in PYTHONPATH if p not in sys.path]

import torch  # noqa: E402,F401  (imported up front, as in ComfyUI: the client
#                adopts tensors with it and would import it on first use)
from distorch import Client  # noqa: E402
from distorch_test_daemon import TestDaemon  # noqa: E402

BENCH = "attach"


def figure(metric: str, value: float, unit: str, baseline: Optional[float] = None,
           target: Optional[float] = None) -> None:
    print(json.dumps({"bench": BENCH, "metric": metric, "value": round(value, 6), "unit": unit,
                      "baseline": None if baseline is None else round(baseline, 6),
                      "ratio": None if not baseline else round(value / baseline, 6),
                      "target": target}), flush=True)


def write_model(path: str, total_bytes: int) -> int:
    """Blocks of a 16 MiB bf16 weight, a bias and a norm, as a diffusion
    model's state dict. Returns the number of tensors."""
    rows, width = 2688, 3072
    header, offset, count = {}, 0, 0
    while offset + rows * width * 2 <= total_bytes:
        b = count // 3
        for name, dtype, shape, size in ((f"blocks.{b}.linear.weight", "BF16", [rows, width], 2),
                                         (f"blocks.{b}.linear.bias", "BF16", [rows], 2),
                                         (f"blocks.{b}.norm.scale", "F32", [width], 4)):
            nbytes = size * int(np.prod(shape))
            header[name] = {"dtype": dtype, "shape": shape,
                            "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            count += 1
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    tile = (np.random.default_rng(1).integers(0, 0x7F, 8 << 20, dtype=np.uint16)
            | 0x3E00).tobytes()  # finite bf16 values in [0.125, 0.25)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        left = offset
        while left > 0:
            f.write(tile[:left])
            left -= min(left, len(tile))
    return count


# The second client. Imports and connects first; then times the attach and,
# after dropping it, a fresh in-process load of the same file.
SECOND_CLIENT = r"""
import json, os, struct, sys, time
import torch
from distorch import Client

def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0

DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}

def load_in_process(path):
    out = {}
    with open(path, "rb", buffering=0) as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        for name, t in header.items():
            if name == "__metadata__":
                continue
            b, e = t["data_offsets"]
            buf = bytearray(e - b)
            f.seek(8 + n + b)
            f.readinto(buf)
            out[name] = torch.frombuffer(buf, dtype=DT[t["dtype"]]).reshape(t["shape"])
    return out

socket_path, model_path = sys.argv[1], sys.argv[2]
t = time.perf_counter()
client = Client(socket_path, client_name="attach-bench-second")
connect_s = time.perf_counter() - t
rss_before = rss_bytes()
t = time.perf_counter()
m = client.load(model_path, allocation="cpu,*")
attach_s = time.perf_counter() - t
rss_after = rss_bytes()
tensors = len(m.tensors)
shared = m.shared
m.release()
t = time.perf_counter()
loaded = load_in_process(model_path)
inprocess_s = time.perf_counter() - t
assert len(loaded) == tensors
del loaded
client.close()
print(json.dumps({"connect_s": connect_s, "attach_s": attach_s, "shared": shared,
                  "tensors": tensors, "rss_growth": rss_after - rss_before,
                  "inprocess_s": inprocess_s}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="2 GiB model (documented numbers)")
    parser.add_argument("--runs", type=int, default=3, help="second clients to start (best of)")
    args = parser.parse_args()
    size = (2 << 30) if args.full else (256 << 20)

    folder = tempfile.mkdtemp(prefix="dt-attach-", dir=os.environ.get("DISTORCH_TEST_TMP", "/tmp"))
    daemon = TestDaemon(devices="sim:0=64MiB", grace_period_s=1,
                        extra_config=os.environ.get("ATTACH_BENCH_EXTRA_CONFIG", ""))
    try:
        path = os.path.join(folder, "model.safetensors")
        write_model(path, size)
        model_bytes = os.path.getsize(path)
        with open(path, "rb", buffering=0) as f:  # into the page cache
            while f.read(16 << 20):
                pass
        daemon.start()
        first = Client(daemon.socket, client_name="attach-bench-first")
        t = time.perf_counter()
        resident = first.load(path, allocation="cpu,*", keep_loaded=True)
        first_load_s = time.perf_counter() - t
        assert not resident.shared

        env = dict(os.environ, PYTHONPATH=os.pathsep.join(PYTHONPATH))
        results = []
        for _ in range(args.runs):
            out = subprocess.run([sys.executable, "-c", SECOND_CLIENT, daemon.socket, path],
                                 env=env, check=True, capture_output=True, text=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        assert all(r["shared"] for r in results), results
        attach = min(r["attach_s"] for r in results)
        inprocess = min(r["inprocess_s"] for r in results)
        growth = max(r["rss_growth"] for r in results)
        mb = model_bytes / 1e6

        figure("model_size", mb, "MB")
        figure("tensors", results[0]["tensors"], "count")
        figure("first_load_through_daemon", first_load_s * 1e3, "ms")
        figure("second_client_connect", min(r["connect_s"] for r in results) * 1e3, "ms")
        # ratio: attach time over a fresh in-process load (target: 1/50 or less).
        figure("second_client_attach", attach * 1e3, "ms", inprocess * 1e3, inprocess * 1e3 / 50)
        figure("fresh_in_process_load", inprocess * 1e3, "ms")
        # ratio: RSS growth over the model's size (target: < 5%).
        figure("second_client_rss_growth", growth / 1e6, "MB", mb, 0.05 * mb)
        resident.release()
        first.close()
    finally:
        rc = daemon.stop()
        daemon.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
