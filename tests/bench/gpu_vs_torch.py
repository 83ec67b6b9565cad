#!/usr/bin/env python3
"""distorchd against plain PyTorch on a CUDA machine.

Figures, one JSON line each (the tests/bench/bench_json.h format):
  safetensors_load_file_cuda   safetensors.torch.load_file(path, device="cuda"), GB/s
  distorch_load_cuda           Client.load(path, compute_device="cuda:0") on a
                               running distorchd, until every tensor is usable
                               in this process (target >= 1.5x safetensors)
  distorch_attach_shared       a second load of the same model while the
                               first holds it: attach + IPC open + views, ms
  matmul_chain_broker_weights  a chain of matmuls on broker-owned weights
                               against the same chain on safetensors-loaded
                               weights (target ratio 1.00 +- 0.03), ms
Every broker tensor is also checked byte-exact against safetensors' copy.

Needs torch with CUDA, safetensors, grpcio and the distorch client package
(client_py/ or installed). Without a GPU it prints "SKIPPED: ..." and exits 77.
Usage: gpu_vs_torch.py --distorchd build/daemon/distorchd [--full]
Quick: a 2 GiB model; --full: 8 GiB. The page cache is warm for both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

if TYPE_CHECKING:
    import torch  # imported where used: the script skips without it

SKIP = 77
BENCH = "gpu_vs_torch"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def emit(metric: str, value: float, unit: str, baseline: Optional[float] = None,
         target: Optional[float] = None) -> None:
    ratio = None if baseline in (None, 0) else value / baseline
    print(json.dumps({"bench": BENCH, "metric": metric, "value": value, "unit": unit,
                      "baseline": baseline, "ratio": ratio, "target": target}), flush=True)


def skip(why: str) -> None:
    print(f"SKIPPED: {why}", flush=True)
    sys.exit(SKIP)


def best_of(runs: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(runs))


def write_model(path: str, gib: int) -> List[str]:
    """Blocks of a 4096x4096 bf16 weight (32 MiB) and a bf16 bias; returns the
    weight names in file order."""
    import torch
    from safetensors.torch import save_file

    blocks = gib * 32
    tensors: Dict[str, "torch.Tensor"] = {}
    gen = torch.Generator(device="cuda").manual_seed(0)
    for i in range(blocks):
        w = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16, generator=gen)
        tensors[f"blocks.{i}.weight"] = w.cpu()
        tensors[f"blocks.{i}.bias"] = torch.randn(4096, dtype=torch.bfloat16).cpu()
    save_file(tensors, path)
    return [f"blocks.{i}.weight" for i in range(blocks)]


def warm(path: str) -> None:
    with open(path, "rb", buffering=0) as f:
        while f.read(64 << 20):
            pass


def start_daemon(distorchd: str, workdir: str) -> subprocess.Popen:
    socket_path = os.path.join(workdir, "d.sock")
    log = open(os.path.join(workdir, "distorchd.log"), "w")
    proc = subprocess.Popen([distorchd, "--socket", socket_path, "--log-level", "info"],
                            stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        if os.path.exists(socket_path + ".fd"):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"distorchd did not start; see {workdir}/distorchd.log")


def matmul_ms(weights: List["torch.Tensor"], iters: int) -> float:
    import torch

    x = torch.randn(512, 4096, device="cuda", dtype=torch.bfloat16)

    def chain() -> "torch.Tensor":
        y = x
        for w in weights:
            y = (y @ w) * (1.0 / 64)
        return y

    for _ in range(5):
        chain()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = float("inf")
    for _ in range(5):
        start.record()
        for _ in range(iters):
            chain()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / iters)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distorchd", required=True, help="path to the distorchd binary")
    parser.add_argument("--full", action="store_true", help="8 GiB model instead of 2 GiB")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    try:
        import torch
    except ImportError as e:
        skip(f"torch is not importable ({e})")
    if not torch.cuda.is_available():
        skip("no CUDA device (torch.cuda.is_available() is False)")
    try:
        from safetensors.torch import load_file
    except ImportError as e:
        skip(f"safetensors is not importable ({e})")
    sys.path.insert(0, os.path.join(REPO, "client_py"))
    try:
        from distorch import Client
    except ImportError as e:
        skip(f"the distorch client package is not importable ({e})")

    gib = 8 if args.full else 2
    workdir = tempfile.mkdtemp(prefix="distorch-gpu-vs-torch-")
    path = os.path.join(workdir, "model.safetensors")
    weights = write_model(path, gib)
    size_gb = os.path.getsize(path) / 1e9
    warm(path)

    def torch_load() -> float:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        sd = load_file(path, device="cuda")
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        del sd
        torch.cuda.empty_cache()
        return dt

    torch_s = best_of(3, torch_load)
    torch_gbps = size_gb / torch_s
    emit("safetensors_load_file_cuda", torch_gbps, "GB/s")

    daemon = start_daemon(args.distorchd, workdir)
    finished = False
    try:
        client = Client(socket_path=os.path.join(workdir, "d.sock"), client_name="gpu_vs_torch")

        def broker_load() -> float:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model = client.load(path, compute_device="cuda:0")
            torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            model.release()
            return dt

        broker_s = best_of(3, broker_load)
        broker_gbps = size_gb / broker_s
        emit("distorch_load_cuda", broker_gbps, "GB/s", torch_gbps, 1.5 * torch_gbps)

        reference = load_file(path, device="cuda")
        model = client.load(path, compute_device="cuda:0")
        second = Client(socket_path=os.path.join(workdir, "d.sock"), client_name="attach")
        t0 = time.perf_counter()
        shared = second.load(path, compute_device="cuda:0")
        attach_ms = (time.perf_counter() - t0) * 1e3
        emit("distorch_attach_shared", attach_ms, "ms")
        if not shared.shared:
            raise RuntimeError("the second load did not attach to the first one's residency")

        mismatched = [n for n, t in reference.items()
                      if model.tensors[n].device.type != "cuda"
                      or not torch.equal(model.tensors[n].view(torch.uint8),
                                         t.view(torch.uint8))]
        if mismatched:
            raise RuntimeError(f"{len(mismatched)} tensors differ, first: {mismatched[0]}")

        chain = weights[:16]
        native_ms = matmul_ms([reference[n] for n in chain], 20)
        broker_ms = matmul_ms([model.tensors[n] for n in chain], 20)
        emit("matmul_chain_broker_weights", broker_ms, "ms", native_ms, native_ms)
        shared.release()
        model.release()
        second.close()
        client.close()
        finished = True
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        if finished and not args.keep:
            for name in os.listdir(workdir):
                os.unlink(os.path.join(workdir, name))
            os.rmdir(workdir)
        else:
            print(f"work directory kept: {workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
