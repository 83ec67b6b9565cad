"""What every flow of drive.py uses: the run's settings (configure(argv), the
environment run_real.sh sets), ComfyUI's HTTP API (prompts, /free), the daemon's
state (`distorchctl --json models`), ComfyUI's log, and the checks: check() prints
`  check: <what>: ok|NO` and raises FlowFailed on NO.

Flow modules read the argv settings through `cfg` (cfg.port, cfg.ctl, ...) at call
time, so drive.py's configure() is seen everywhere.
"""

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request


class _Config:
    """drive.py's arguments: PORT CTL SOCKET COMFYUI_LOG."""
    port = ctl = sock = log = base = None


cfg = _Config()


def configure(argv):
    """Sets cfg from drive.py's argv (CTL may be "host-exec /path/distorchctl")."""
    cfg.port, cfg.ctl, cfg.sock, cfg.log = argv[1], shlex.split(argv[2]), argv[3], argv[4]
    cfg.base = f"http://127.0.0.1:{cfg.port}"


PROBE_OUT = os.environ.get("DISTORCH_PROBE_OUT", "")
MODELS = os.environ.get("DISTORCH_REAL_MODELS", "")
OUTPUT = os.environ.get("DISTORCH_REAL_OUTPUT", "")
CLIP_FILE = os.environ.get("DISTORCH_REAL_CLIP_FILE", "clip_l.safetensors")
CLIP_TYPE = os.environ.get("DISTORCH_REAL_CLIP_TYPE", "stable_diffusion")
CLIP_ALLOC = os.environ.get("DISTORCH_REAL_CLIP_ALLOC", "")
WORK = os.environ.get("DISTORCH_REAL_WORK", "")
COMFY_DIR = os.environ.get("DISTORCH_REAL_COMFYUI_DIR", "")
COMFY_PYTHON = os.environ.get("DISTORCH_REAL_PYTHON", sys.executable)
COMFY_FLAGS = shlex.split(os.environ.get("DISTORCH_REAL_COMFY_FLAGS", ""))
DAEMON_BIN = os.environ.get("DISTORCH_REAL_DAEMON_BIN", "")
GiB, MiB = 1 << 30, 1 << 20

state = {}  # what one flow leaves for a later one


class FlowFailed(Exception):
    pass


def check(ok, what):
    print(f"  check: {what}: {'ok' if ok else 'NO'}", flush=True)
    if not ok:
        raise FlowFailed(what)


# -- ComfyUI --------------------------------------------------------------------

def post(path, body, url=None):
    req = urllib.request.Request((url or cfg.base) + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read().decode()
    except urllib.error.HTTPError as e:
        text = e.read().decode()
    return json.loads(text) if text else {}


def get(path, url=None):
    with urllib.request.urlopen((url or cfg.base) + path, timeout=60) as r:
        return json.loads(r.read().decode())


def run_prompt(prompt, label, timeout=900, url=None, expect_error=False):
    """Queues a prompt and waits for its /history entry; returns (entry, seconds).
    expect_error: the prompt must fail; returns its execution_error message."""
    t0 = time.time()
    reply = post("/prompt", {"prompt": prompt}, url)
    if "prompt_id" not in reply:
        raise FlowFailed(f"{label}: rejected: {json.dumps(reply)[:2000]}")
    pid = reply["prompt_id"]
    while time.time() - t0 < timeout:
        hist = get(f"/history/{pid}", url)
        if pid in hist and hist[pid].get("status", {}).get("completed") is not None:
            status = hist[pid]["status"]
            if expect_error:
                errors = [m[1] for m in status.get("messages", []) if m[0] == "execution_error"]
                check(status.get("status_str") != "success" and bool(errors),
                      f"{label}: the prompt failed ({status.get('status_str')})")
                print(f"  {label}: failed as expected in {time.time() - t0:.1f} s: "
                      f"{errors[0].get('exception_type')}: {errors[0].get('exception_message', '').strip()[:600]}")
                return errors[0]
            if status.get("status_str") != "success":
                errors = [m[1] for m in status.get("messages", []) if m[0] == "execution_error"]
                if errors:
                    e = errors[0]
                    raise FlowFailed(f"{label}: {e.get('node_type')} raised {e.get('exception_type')}: "
                                     f"{e.get('exception_message', '').strip()[:1500]}\n"
                                     f"{''.join(e.get('traceback', [])[-6:])[-2500:]}")
                raise FlowFailed(f"{label}: FAILED: {json.dumps(status)[:2000]}")
            print(f"  {label}: success in {time.time() - t0:.1f} s", flush=True)
            return hist[pid], time.time() - t0
        time.sleep(0.2)
    raise FlowFailed(f"{label}: no result in {timeout} s")


def free(unload=True):
    post("/free", {"unload_models": unload, "free_memory": True})


# -- the daemon -------------------------------------------------------------------

def models(socket_path=None):
    """name -> {id, keep (per lease), bytes, devices} of every residency."""
    out = subprocess.run(cfg.ctl + ["--socket", socket_path or cfg.sock, "--json", "models"], capture_output=True,
                         text=True, check=True).stdout
    doc = json.loads(out)
    return {m["name"]: {"id": int(m["model_id"]),
                        "keep": [lease.get("keep_loaded", False) for lease in m.get("leases", [])],
                        "raw": m}
            for m in doc.get("models", [])}


def wait_models(pred, what, timeout=60.0):
    """Polls the daemon until pred(models()) holds (a /free is picked up by
    ComfyUI's prompt worker when it next looks at its flags, not at once)."""
    deadline = time.time() + timeout
    while True:
        m = models()
        if pred(m):
            return m
        if time.time() > deadline:
            print(f"  resident: {summary(m)}")
            raise FlowFailed(f"{what} (not within {timeout:.0f} s)")
        time.sleep(0.25)


def summary(m):
    return {k: (v["id"], v["keep"]) for k, v in m.items()}


def residencies(name=None, socket_path=None):
    """Every residency (raw `distorchctl --json models` entries), or those of one file."""
    out = subprocess.run(cfg.ctl + ["--socket", socket_path or cfg.sock, "--json", "models"],
                         capture_output=True, text=True, check=True).stdout
    return [m for m in json.loads(out).get("models", []) if name is None or m["name"] == name]


def placed(m):
    """{device: bytes} of one residency (devices holding nothing left out)."""
    return {d["device"]: int(d.get("bytes", 0)) for d in m.get("devices", []) if int(d.get("bytes", 0))}


def keeps(m):
    return [lease.get("keep_loaded", False) for lease in m.get("leases", [])]


def mib(n):
    return f"{n / MiB:.1f} MiB"


def describe(m):
    parts = f" part {m['tensor_prefixes']}" if m.get("tensor_prefixes") else ""
    return (f"{m['name']}{parts} (#{m['model_id']}): allocation {m.get('allocation', '')!r}, compute "
            f"{m.get('compute_device', '')!r}, on {({d: mib(b) for d, b in placed(m).items()})}, keep {keeps(m)}")


def one(name):
    found = residencies(name)
    for m in found:
        print("  daemon:", describe(m))
    check(len(found) == 1, f"{name}: one residency in distorchd ({len(found)})")
    return found[0]


def fresh(*names):
    """No residency of these files (an earlier flow's leftover is evicted)."""
    for m in residencies():
        if m["name"] in names:
            print(f"  evicting a leftover residency: {describe(m)}")
            subprocess.run(cfg.ctl + ["--socket", cfg.sock, "evict", str(m["model_id"])], capture_output=True)
    wait_models(lambda m: not any(n in m for n in names), f"no residency of {names}")


def free_and_wait(*names):
    free()
    wait_models(lambda m: not any(n in m for n in names), f"/free released {', '.join(names)}")


def free_kept_check(name, m):
    """/free, and once ComfyUI has run it (its unload_all_models line), the kept
    residency `m` of `name` is still there."""
    start = log_size()
    free()
    line = wait_log(start, "unload_all_models", "ComfyUI ran the /free")[-1]
    print("  log:", line.split("distorch: ", 1)[-1])
    after = residencies(name)
    check([x["model_id"] for x in after] == [m["model_id"]], f"{name} kept across /free (same residency)")


# -- ComfyUI's log ------------------------------------------------------------------

def log_lines(start, needle="distorch"):
    with open(cfg.log, errors="replace") as f:
        f.seek(start)
        return [line.rstrip() for line in f if needle in line]


def log_size():
    return os.path.getsize(cfg.log)


def wait_log(start, needle, what, timeout=60.0, path=None):
    """Polls a ComfyUI log (from `start`) for a line containing needle."""
    deadline = time.time() + timeout
    while True:
        with open(path or cfg.log, errors="replace") as f:
            f.seek(start)
            hits = [line.rstrip() for line in f if needle in line]
        if hits:
            return hits
        if time.time() > deadline:
            raise FlowFailed(f"{what} (no {needle!r} in the log within {timeout:.0f} s)")
        time.sleep(0.25)


def node_log(start, node_type, *needles):
    lines = [line for line in log_lines(start) if f"distorch: {node_type}" in line]
    print("\n".join("  log: " + line.split("distorch: ", 1)[-1][:400] for line in lines[:2]))
    check(bool(lines), f"{node_type} logged its request")
    for n in needles:
        check(any(n in line for line in lines), f"{node_type}'s log says {n!r}")


# -- the probe's records --------------------------------------------------------------

def probe_doc(label):
    with open(os.path.join(PROBE_OUT, f"{label}.json")) as f:
        return json.load(f)


def same_weights(a_label, b_label, what, strict=True, ignore=()):
    """The probe digests of two runs: every weight byte-equal (a weight ComfyUI never
    fills, uninitialised memory on both sides, is left out). strict=False: report only."""
    a, b = probe_doc(a_label)["weights"], probe_doc(b_label)["weights"]
    check(len(a) > 0, f"{what}: the probe saw weights ({len(a)})")
    missing = sorted(set(a) ^ set(b))
    unset = sorted(k for k in set(a) & set(b)
                   if (a[k][3] != a[k][3] and b[k][3] != b[k][3]) or k in ignore)
    if unset:
        print(f"  left out (never loaded by ComfyUI: uninitialised memory on both sides): {unset}")
    differ = sorted(k for k in set(a) & set(b) if a[k][0] != b[k][0] and k not in unset)
    if missing:
        print(f"  only in one: {missing[:5]}")
    if differ:
        worst = max(differ, key=lambda k: abs(a[k][3] - b[k][3]))
        print(f"  {len(differ)} weight(s) differ, e.g. {differ[:4]}; largest sum difference "
              f"{worst}: {a[worst][3]!r} vs {b[worst][3]!r} ({a[worst][1]} vs {b[worst][1]})")
    if not strict:
        print(f"  {what}: {len(differ)} of {len(a)} parameters differ (report only)")
        return differ
    check(not missing and not differ, f"{what}: {len(a) - len(unset)} weights byte-equal")


def same_outputs(a_label, b_label, what):
    """The output probe's tensors of two runs: equal, or within float32 rounding."""
    import torch
    a = torch.load(os.path.join(PROBE_OUT, f"{a_label}.pt"))
    b = torch.load(os.path.join(PROBE_OUT, f"{b_label}.pt"))
    check(set(a) == set(b) and a, f"{what}: the same outputs ({sorted(a)})")
    for k in sorted(a):
        exact = torch.equal(a[k], b[k])
        diff = float((a[k] - b[k]).abs().max()) if a[k].shape == b[k].shape else float("inf")
        scale = float(b[k].abs().max())
        verdict = "identical" if exact else f"max |diff| {diff:.3g} (max |value| {scale:.3g})"
        print(f"  {k} {tuple(a[k].shape)}: {verdict}")
        check(exact or diff <= 1e-4 * max(scale, 1.0), f"{what}: {k} equal")


def check_virtual_vram(m, compute, gb, donors, what):
    """A residency placed from compute/virtual_vram_gb/donors: computes on `compute`,
    the donors hold together at most `gb` GiB (more than nothing), in donor order, the
    compute device the rest, and the daemon recorded the virtual VRAM allocation."""
    p = placed(m)
    moved = sum(p.get(d, 0) for d in donors)
    alloc = m.get("allocation", "")
    check(m.get("compute_device") == compute, f"{what}: placed for compute {compute} ({m.get('compute_device')!r})")
    check(alloc.startswith(f"compute={compute},virtual_vram_gb=") and alloc.endswith(f"donors={','.join(donors)}"),
          f"{what}: the recorded allocation is the virtual VRAM one ({alloc!r})")
    check(set(p) <= {compute, *donors}, f"{what}: weights only on {compute} and the donors {donors}")
    check(0 < moved <= gb * GiB, f"{what}: {mib(moved)} moved to the donors (at most {gb:g} GiB)")
    check(p.get(donors[0], 0) > 0, f"{what}: the first donor {donors[0]} took its share")


def check_whole_on(m, device, what):
    p = placed(m)
    check(set(p) == {device}, f"{what}: the whole model on {device} ({ {d: mib(b) for d, b in p.items()} })")
    check(m.get("compute_device") == device, f"{what}: placed for compute {device} ({m.get('compute_device')!r})")


def check_probe(label, which, compute, devices, what, res=None):
    """The probe's view of a loaded model: distorch adopted it with `compute`, its
    broker tensors are on `devices` (the bytes the daemon placed there, when `res` is
    given), and ComfyUI runs it on torch's cpu (a sim:N compute runs there)."""
    pl = probe_doc(label)["placement"][which]
    print(f"  probe {which}: load_device {pl['load_device']}, compute {pl['compute']}, broker "
          f"{ {d: mib(b) for d, b in pl['broker_bytes'].items()} }, torch "
          f"{ {d: mib(b) for d, b in pl['torch_bytes'].items()} }" + (f", vae.device {pl['vae_device']}"
                                                                      if "vae_device" in pl else ""))
    check(pl["broker"], f"{what}: the {which} is a distorch (broker) model")
    check(pl["compute"] == compute, f"{what}: distorch computes the {which} on {compute} ({pl['compute']})")
    on = {d for d, b in pl["broker_bytes"].items() if d != "None" and b}
    check(on and on <= set(devices), f"{what}: its broker tensors are on {sorted(on)} (of {sorted(devices)})")
    check(set(pl["torch_bytes"]) == {"cpu"} and pl["load_device"] == "cpu",
          f"{what}: torch tensors and load device on cpu (sim devices are host memory)")
    if res is not None:
        for d, b in placed(res).items():
            got = pl["broker_bytes"].get(d, 0)
            check(abs(got - b) <= max(MiB, b // 50),
                  f"{what}: {which} tensors on {d}: {mib(got)}, as the daemon placed ({mib(b)})")
