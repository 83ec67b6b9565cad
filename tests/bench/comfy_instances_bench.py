"""Several real ComfyUI instances on one text encoder: through distorch's
nodes (one broker copy shared zero-copy) and the stock way (a copy each).

Not a timed test: a benchmark run by hand, through comfy_instances_bench.sh
(which provides the interpreter, ComfyUI's requirements, the model file and
the daemon binary). For each mode, one after the other, it starts 1..N ComfyUI
instances (--cpu, own port, own --base-directory), each queueing one prompt:

  distorch  DistorchCLIPLoader (compute cpu) -> DistorchProbe
  stock     CLIPLoader                       -> DistorchProbe

DistorchProbe (tests/comfyui/real/probe_node) makes ComfyUI load the model
(load_models_gpu) and reads every weight, as a sampler would. After each
instance's prompt it measures, over every instance and the daemon,
/proc/PID/smaps_rollup (Rss, Pss, Pss_Anon, Pss_File, Pss_Shmem) and the
machine's MemAvailable and Shmem. Times per instance:

  prompt_s  from POST /prompt to the /history entry being complete
  loader_s  the loader step: from ComfyUI's `execution_start` (its /history
            status message, ms) to the probe node being entered (the probe runs
            right after the loader: every node before it has finished)

The instances of a mode are stopped (and the daemon) before the next mode
starts. Prints one JSON object per measurement and a summary object with the
two claims: N instances cost one copy of the weights plus per-process memory
(distorch) vs N copies (stock), and a later instance's loader step is >= 50x
faster than a stock load.
"""

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

GIB = 1 << 30
procs = []  # every process started here, stopped by stop_all()


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0]) * 1024
    return out


def rollup(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[0].endswith(":") and parts[2] == "kB":
                    out[parts[0][:-1]] = int(parts[1]) * 1024
    except FileNotFoundError:
        pass
    return out


def http(port, path, body=None, timeout=30):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        text = r.read().decode()
    return json.loads(text) if text else {}


def start(cmd, logfile, env=None, cwd=None):
    f = open(logfile, "w")
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                         start_new_session=True)
    procs.append(p)
    return p


def stop(p, grace=20):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    if p in procs:
        procs.remove(p)


def stop_all():
    for p in list(procs):
        try:
            stop(p)
        except ProcessLookupError:
            pass


class Instance:
    def __init__(self, args, mode, index, sock):
        self.port = args.port_base + index
        self.base = os.path.join(args.work, f"{mode}-{index}")
        self.label = f"{mode}-{index}"
        for d in ("custom_nodes", "models/text_encoders", "probe", "fe"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        with open(os.path.join(self.base, "fe", "index.html"), "w") as f:
            f.write("<html></html>")
        os.symlink(args.model, os.path.join(self.base, "models/text_encoders", os.path.basename(args.model)))
        os.symlink(os.path.join(args.repo, "tests/comfyui/real/probe_node"),
                   os.path.join(self.base, "custom_nodes/distorch_probe"))
        if mode == "distorch":
            os.symlink(os.path.join(args.repo, "client_py/distorch/comfy/comfyui_node"),
                       os.path.join(self.base, "custom_nodes/distorch"))
        env = dict(os.environ, DISTORCH_SOCKET=sock or "", DISTORCH_PROBE_OUT=os.path.join(self.base, "probe"))
        self.log = os.path.join(self.base, "comfyui.log")
        self.proc = start([sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1",
                           "--port", str(self.port), "--base-directory", self.base,
                           "--front-end-root", os.path.join(self.base, "fe")],
                          self.log, env=env, cwd=args.comfyui)

    def wait_ready(self, timeout=600):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited (rc {self.proc.returncode}); see {self.log}")
            try:
                http(self.port, "/system_stats", timeout=5)
                return time.time() - t0
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise RuntimeError(f"{self.label} not ready in {timeout} s; see {self.log}")

    def run(self, mode, clip_name, clip_type):
        if mode == "distorch":
            loader = {"class_type": "DistorchCLIPLoader", "inputs": {
                "clip_name": clip_name, "type": clip_type, "compute_device": "cpu",
                "virtual_vram_gb": 0.0, "donor_device": "cpu", "expert_mode_allocations": "",
                "keep_loaded": False}}
        else:
            loader = {"class_type": "CLIPLoader", "inputs": {"clip_name": clip_name, "type": clip_type}}
        prompt = {"1": loader, "2": {"class_type": "DistorchProbe", "inputs": {
            "clip": ["1", 0], "label": self.label, "digest": False}}}
        t0 = time.time()
        reply = http(self.port, "/prompt", {"prompt": prompt})
        pid = reply.get("prompt_id")
        if not pid:
            raise RuntimeError(f"{self.label}: prompt rejected: {json.dumps(reply)[:1000]}")
        while True:
            hist = http(self.port, f"/history/{pid}")
            entry = hist.get(pid)
            if entry and entry.get("status", {}).get("completed") is not None:
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited during its prompt; see {self.log}")
            time.sleep(0.1)
        prompt_s = time.time() - t0
        status = entry["status"]
        if status.get("status_str") != "success":
            raise RuntimeError(f"{self.label}: prompt failed: {json.dumps(status)[:2000]}")
        start_ms = next(m[1]["timestamp"] for m in status["messages"] if m[0] == "execution_start")
        with open(os.path.join(self.base, "probe", f"{self.label}.json")) as f:
            doc = json.load(f)
        return {"prompt_s": round(prompt_s, 3), "loader_s": round(doc["entered"] - start_ms / 1000.0, 3),
                "use_s": round(doc["done"] - doc["entered"], 3)}


def measure(pids, baseline):
    total = {"rss": 0, "pss": 0, "pss_anon": 0, "pss_file": 0, "pss_shmem": 0}
    per = {}
    for name, pid in pids.items():
        r = rollup(pid)
        per[name] = round(r.get("Pss", 0) / GIB, 3)
        total["rss"] += r.get("Rss", 0)
        total["pss"] += r.get("Pss", 0)
        total["pss_anon"] += r.get("Pss_Anon", 0)
        total["pss_file"] += r.get("Pss_File", 0)
        total["pss_shmem"] += r.get("Pss_Shmem", 0)
    mi = meminfo()
    out = {f"{k}_gib": round(v / GIB, 3) for k, v in total.items()}
    out["pss_per_process_gib"] = per
    out["machine_used_delta_gib"] = round((baseline["MemAvailable"] - mi["MemAvailable"]) / GIB, 3)
    out["machine_shmem_delta_gib"] = round((mi["Shmem"] - baseline["Shmem"]) / GIB, 3)
    return out


def run_mode(args, mode, results):
    baseline = meminfo()
    pids, sock = {}, None
    daemon = None
    if mode == "distorch":
        sock = os.path.join(args.work, "d.sock")
        conf = os.path.join(args.work, "distorchd.toml")
        with open(conf, "w") as f:
            f.write("grace_period_s = 1\n")
        daemon = start(shlex.split(args.distorchd) + ["--config", conf, "--socket", sock],
                       os.path.join(args.work, "distorchd.log"))
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        pids["distorchd"] = daemon.pid
    instances = []
    try:
        for i in range(1, args.instances + 1):
            avail = meminfo()["MemAvailable"] / GIB
            need = (args.model_gib if mode == "stock" else 0) + 1.5
            if avail < need + args.keep_free_gib:
                log(f"{mode}: not starting instance {i}: {avail:.1f} GiB available, "
                    f"{need + args.keep_free_gib:.1f} needed")
                results.append({"mode": mode, "instances": i, "skipped": f"memory: {avail:.1f} GiB available"})
                break
            inst = Instance(args, mode, i, sock)
            instances.append(inst)
            ready_s = inst.wait_ready()
            pids[inst.label] = inst.proc.pid
            idle_pss = rollup(inst.proc.pid).get("Pss", 0) / GIB
            log(f"{mode}: instance {i} ready in {ready_s:.0f} s (idle PSS {idle_pss:.2f} GiB); queueing")
            times = inst.run(mode, os.path.basename(args.model), args.clip_type)
            mem = measure(pids, baseline)
            row = {"mode": mode, "instances": i, "instance": i, **times,
                   "idle_instance_pss_gib": round(idle_pss, 3), **mem}
            log(f"{mode}: instance {i}: loader {times['loader_s']} s, prompt {times['prompt_s']} s, "
                f"PSS total {mem['pss_gib']} GiB")
            print(json.dumps(row), flush=True)
            results.append(row)
    finally:
        for inst in instances:
            stop(inst.proc)
        if daemon is not None:
            stop(daemon)
        # The next mode starts from this baseline again: wait for the memory to come back.
        for _ in range(120):
            if meminfo()["MemAvailable"] >= baseline["MemAvailable"] - GIB:
                break
            time.sleep(0.5)


def summarize(args, results):
    rows = {(r["mode"], r["instances"]): r for r in results if "skipped" not in r}
    weights = args.model_gib
    out = {"figure": "summary", "model_gib": round(weights, 3), "instances": args.instances,
           "side_by_side": {}}
    for n in range(1, args.instances + 1):
        d, s = rows.get(("distorch", n)), rows.get(("stock", n))
        out["side_by_side"][str(n)] = {
            "distorch_pss_gib": d and d["pss_gib"], "stock_pss_gib": s and s["pss_gib"],
            "distorch_rss_gib": d and d["rss_gib"], "stock_rss_gib": s and s["rss_gib"],
            "distorch_machine_used_gib": d and d["machine_used_delta_gib"],
            "stock_machine_used_gib": s and s["machine_used_delta_gib"],
            "distorch_loader_s": d and d["loader_s"], "stock_loader_s": s and s["loader_s"],
            "distorch_prompt_s": d and d["prompt_s"], "stock_prompt_s": s and s["prompt_s"]}

    def copies(mode, n):
        """(total PSS - the instances' idle PSS - the daemon's own) / the weights' size."""
        r = rows.get((mode, n))
        if not r:
            return None
        idle = sum(rows[(mode, k)]["idle_instance_pss_gib"] for k in range(1, n + 1) if (mode, k) in rows)
        daemon_own = 0.0  # the daemon's PSS is its shmem share plus a few MiB of its own
        return round((r["pss_gib"] - idle - daemon_own) / weights, 2)

    n = args.instances
    out["weight_copies"] = {m: {str(k): copies(m, k) for k in range(1, n + 1)} for m in ("distorch", "stock")}
    later = [rows[("distorch", k)]["loader_s"] for k in range(2, n + 1) if ("distorch", k) in rows]
    stock = [rows[("stock", k)]["loader_s"] for k in range(1, n + 1) if ("stock", k) in rows]
    if later and stock:
        worst_later, best_stock = max(later), min(stock)
        out["later_instance_loader_s_max"] = worst_later
        out["stock_loader_s_min"] = best_stock
        out["loader_speedup"] = round(best_stock / max(worst_later, 1e-6), 1)  # the worst case
        out["loader_speedup_mean"] = round((sum(stock) / len(stock)) / max(sum(later) / len(later), 1e-6), 1)
        out["claim_loader_50x"] = out["loader_speedup"] >= 50
    dc = [c for c in out["weight_copies"]["distorch"].values() if c is not None]
    sc = out["weight_copies"]["stock"]
    out["claim_one_copy"] = bool(dc) and all(0.7 <= c <= 1.3 for c in dc) and (
        sc.get(str(n)) is None or sc[str(n)] >= n - 0.5)
    out["statement"] = (
        f"{n} ComfyUI instances on a {weights:.2f} GiB text encoder: distorch "
        f"{out['side_by_side'][str(n)]['distorch_pss_gib']} GiB PSS in all (weight copies "
        f"{out['weight_copies']['distorch'].get(str(n))}), stock "
        f"{out['side_by_side'][str(n)]['stock_pss_gib']} GiB (weight copies "
        f"{out['weight_copies']['stock'].get(str(n))}); a later instance's loader step "
        f"{out.get('later_instance_loader_s_max')} s vs stock {out.get('stock_loader_s_min')} s "
        f"({out.get('loader_speedup')}x; >= 50x: {out.get('claim_loader_50x')}); one copy of the "
        f"weights plus per-process memory: {out['claim_one_copy']}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--model", required=True, help="the text encoder file")
    ap.add_argument("--clip-type", default="lumina2")
    ap.add_argument("--distorchd", required=True, help="command line of distorchd")
    ap.add_argument("--instances", type=int, default=3)
    ap.add_argument("--modes", default="distorch,stock")
    ap.add_argument("--port-base", type=int, default=8300)
    ap.add_argument("--keep-free-gib", type=float, default=1.5,
                    help="do not start an instance that would leave less than this available")
    args = ap.parse_args()
    args.model_gib = os.path.getsize(args.model) / GIB
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *a: (stop_all(), sys.exit(130)))
    results = []
    try:
        for mode in args.modes.split(","):
            log(f"mode {mode}: up to {args.instances} instance(s)")
            run_mode(args, mode, results)
    finally:
        stop_all()
    print(json.dumps(summarize(args, results), indent=1), flush=True)


if __name__ == "__main__":
    main()
