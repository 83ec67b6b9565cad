"""run_real.sh's driver: HTTP API prompts, /free, and distorchctl checks."""

import json
import os
import subprocess
import sys
import time
import urllib.request

port, ctl, sock, log = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
base = f"http://127.0.0.1:{port}"
# The text encoder run_real.sh chose (make_real_models.py wrote it).
CLIP_FILE = os.environ.get("DISTORCH_REAL_CLIP_FILE", "clip_l.safetensors")
CLIP_TYPE = os.environ.get("DISTORCH_REAL_CLIP_TYPE", "stable_diffusion")
CLIP_ALLOC = os.environ.get("DISTORCH_REAL_CLIP_ALLOC", "")


def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read().decode()
        return json.loads(text) if text else {}


def get(path):
    with urllib.request.urlopen(base + path, timeout=60) as r:
        return json.loads(r.read().decode())


def models():
    out = subprocess.run([ctl, "--socket", sock, "--json", "models"], capture_output=True,
                         text=True, check=True).stdout
    doc = json.loads(out)
    return {m["name"]: (int(m["model_id"]), [l.get("keep_loaded", False) for l in m.get("leases", [])])
            for m in doc.get("models", [])}


PROMPT = {
    "1": {"class_type": "DistorchUNETLoader", "inputs": {
        "unet_name": "tiny_sd15_unet.safetensors", "weight_dtype": "default", "compute_device": "sim:0",
        "virtual_vram_gb": 0.0, "donor_device": "cpu", "expert_mode_allocations": "sim:0,50%;sim:1,*",
        "keep_loaded": True}},
    "2": {"class_type": "DistorchCLIPLoader", "inputs": {
        "clip_name": CLIP_FILE, "type": CLIP_TYPE, "compute_device": "sim:0",
        "virtual_vram_gb": 0.0, "donor_device": "cpu", "expert_mode_allocations": CLIP_ALLOC,
        "keep_loaded": False}},
    "3": {"class_type": "DistorchProbe", "inputs": {"model": ["1", 0], "clip": ["2", 0]}},
}


def run_prompt(label):
    reply = post("/prompt", {"prompt": PROMPT})
    if "prompt_id" not in reply:
        print(f"{label}: rejected: {json.dumps(reply)[:2000]}")
        sys.exit(1)
    pid = reply["prompt_id"]
    for _ in range(600):
        hist = get(f"/history/{pid}")
        if pid in hist and hist[pid].get("status", {}).get("completed") is not None:
            status = hist[pid]["status"]
            if status.get("status_str") != "success":
                print(f"{label}: FAILED: {json.dumps(status.get('messages'))[:3000]}")
                sys.exit(1)
            print(f"{label}: success; probe said {hist[pid]['outputs'].get('3')}")
            return
        time.sleep(0.5)
    print(f"{label}: timed out")
    sys.exit(1)


run_prompt("prompt 1")
before = models()
print("resident after prompt 1:", before)
post("/free", {"unload_models": True, "free_memory": True})
time.sleep(3)
after = models()
print("resident after /free:", after)
ok = CLIP_FILE not in after and after.get("tiny_sd15_unet.safetensors") == before.get(
    "tiny_sd15_unet.safetensors")
print("CHECK /free ejected exactly the unflagged CLIP and kept the UNet:", "PASS" if ok else "FAIL")
run_prompt("prompt 2")
again = models()
print("resident after prompt 2:", again)
kept = again.get("tiny_sd15_unet.safetensors", (None,))[0] == before["tiny_sd15_unet.safetensors"][0]
print("CHECK kept UNet reused by prompt 2 (same residency):", "PASS" if kept else "FAIL")
with open(log) as f:
    lines = [l.rstrip() for l in f if "distorch" in l]
print("\n".join(lines[-25:]))
sys.exit(0 if ok and kept else 1)
