"""run_real.sh's driver: queues prompts through ComfyUI's HTTP API, posts /free,
and checks the daemon's state (`distorchctl --json models`), ComfyUI's
/history and the probe node's weight digests. Each flow prints
`FLOW <name>: PASS|FAIL <why>` and the next flow runs whatever happened;
the exit status is 0 only when every flow passed.

  drive.py PORT CTL SOCKET COMFYUI_LOG        (CTL may be "host-exec /path/distorchctl")

Environment (run_real.sh sets it): DISTORCH_REAL_FLOWS (space separated, in
order), DISTORCH_PROBE_OUT (the probe node's digests), DISTORCH_REAL_MODELS and
DISTORCH_REAL_OUTPUT (ComfyUI's models and output directories), and for the
`keep` flow DISTORCH_REAL_CLIP_FILE/_TYPE/_ALLOC.

Flows (see docs/testing.md):
  keep        UNet (keep_loaded) + text encoder ($CLIP), /free ejects exactly the
              encoder, a second prompt reuses the kept UNet (the torch-1.13 run)
  clip_l      UNet + CLIP-L through distorch nodes; weights, a text encoding and one
              sampler step equal a stock load's
  free_kept   /free with a kept model: CLIP-L ejected, the kept UNet stays
  reuse       the clip_l prompt again: the UNet's residency reused, CLIP-L reloaded
  kept_unused a prompt without the kept UNet: it stays resident (keep_loaded)
  gemma2      Gemma 2 2B (lumina2) over sim:1 and cpu, used in place; then /free
  triple      DistorchTripleCLIPLoader: CLIP-L + CLIP-G + T5-XXL (fp8); then /free
  checkpoint  DistorchCheckpointLoaderSimple: weights and outputs equal a stock load's
  checkpoint_save  its CheckpointSave equals the source file
  lora        LoraLoader on distorch-loaded UNet + CLIP: a text encoding and one
              sampler step equal the stock loaders' (within float32 rounding) at
              strength 1.0, then after a strength change; then without the LoRA the
              outputs and the shared base equal stock's exactly
  save        ModelSave and CLIPSave of distorch-loaded models equal the source files
  save_lora   ModelSave and CLIPSave after a LoraLoader: equal to the same saves of
              stock-loaded models (the patched weights are written)
  gguf        ComfyUI-GGUF through DistorchUnetLoaderGGUF, F16 and Q8_0 files: the
              weights equal UnetLoaderGGUF's
  free_all    /free with no kept model: every residency of this instance released

ComfyUI-MultiGPU workflows (API format, MultiGPU's node names and inputs as its saved
workflows have them, sim:0/sim:1 for cuda:0/cuda:1; each flow evicts a leftover
residency of its files first and ends with /free releasing what it loaded; placement is
checked in the daemon, `distorchctl --json models`: allocation, compute_device and bytes
per device of each residency, and in the process: the probe's record of where each
model's tensors are and where ComfyUI runs it):
  mgpu_names        /object_info: every MultiGPU name (44 with ComfyUI-GGUF), inputs in
                    MultiGPU's order (saved widget values are positional), MultiGPU's
                    defaults, device combos = the broker's devices, cpu first
  mgpu_unet_vram    UNETLoaderDisTorch2MultiGPU, compute sim:0, 0.05 GB onto the donor
                    sim:1; weights byte-equal to UNETLoader's
  mgpu_expert_bytes the same with expert_mode_allocations 'sim:0,40mb;sim:1,*' (wins over
                    virtual_vram_gb 4.0) and eject_models=False: kept across /free; run
                    again with eject_models=True, /free releases it
  mgpu_expert_logged  MultiGPU's logged strings as expert strings: the UNet
                    'sim:1,50%;cpu,*#sim:1;4.0;cpu', CLIP-L '#sim:0;0.1;sim:1'
  mgpu_clip_device  CLIPLoaderMultiGPU on sim:1, DualCLIPLoaderMultiGPU (CLIP-L + CLIP-G)
                    on sim:0: each file whole on that device
  mgpu_triple       TripleCLIPLoaderDisTorch2MultiGPU (V3): compute sim:0, 2 GB of each
                    encoder onto sim:1
  mgpu_checkpoint   CheckpointLoaderSimpleDisTorch2MultiGPU, 0.3 GB onto sim:1; model,
                    CLIP and VAE byte-equal to CheckpointLoaderSimple's
  mgpu_ckpt_advanced  CheckpointLoaderAdvancedDisTorch2MultiGPU: UNet, CLIP and VAE parts
                    of one file each placed as asked; then CheckpointLoaderAdvancedMultiGPU
  mgpu_vae          VAELoaderMultiGPU on sim:1, VAELoaderDisTorch2MultiGPU on sim:0
  mgpu_gguf         UnetLoaderGGUFDisTorch2MultiGPU (Q8_0, byte-equal to UnetLoaderGGUF's)
                    and the legacy UnetLoaderGGUFDisTorchMultiGPU with use_other_vram
                    (donors sim:1 then cpu)
  mgpu_eject        eject_models across /free: True released, False kept; the kept one
                    released after its node ran with True
  autostart         another ComfyUI (port+1) with no daemon on its socket: it starts one
                    (DISTORCH_DAEMON_BIN/_ARGS/_IDLE_EXIT_S), logs where, serves a
                    prompt through it; the daemon outlives ComfyUI; the flow then stops
                    exactly that daemon (pid from the log, checked against its command line)
  no_drop           another ComfyUI (port+2), DISTORCH_AUTOSTART=0, no daemon: a DisTorch2
                    node with an allocation fails the prompt naming the socket; a
                    device-only node loads the stock way; one warning
The last two need DISTORCH_REAL_WORK, _COMFYUI_DIR, _PYTHON, _COMFY_FLAGS and
_DAEMON_BIN (run_real.sh sets them; a ComfyUI with --base-directory).
"""

import glob
import json
import os
import shlex
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request

port, ctl, sock, log = sys.argv[1], shlex.split(sys.argv[2]), sys.argv[3], sys.argv[4]
base = f"http://127.0.0.1:{port}"
PROBE_OUT = os.environ.get("DISTORCH_PROBE_OUT", "")
MODELS = os.environ.get("DISTORCH_REAL_MODELS", "")
OUTPUT = os.environ.get("DISTORCH_REAL_OUTPUT", "")
FLOWS = os.environ.get("DISTORCH_REAL_FLOWS", "keep").split()
CLIP_FILE = os.environ.get("DISTORCH_REAL_CLIP_FILE", "clip_l.safetensors")
CLIP_TYPE = os.environ.get("DISTORCH_REAL_CLIP_TYPE", "stable_diffusion")
CLIP_ALLOC = os.environ.get("DISTORCH_REAL_CLIP_ALLOC", "")
UNET = "tiny_sd15_unet.safetensors"


class FlowFailed(Exception):
    pass


def check(ok, what):
    print(f"  check: {what}: {'ok' if ok else 'NO'}", flush=True)
    if not ok:
        raise FlowFailed(what)


# -- ComfyUI and the daemon -------------------------------------------------

def post(path, body, url=None):
    req = urllib.request.Request((url or base) + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read().decode()
    except urllib.error.HTTPError as e:
        text = e.read().decode()
    return json.loads(text) if text else {}


def get(path, url=None):
    with urllib.request.urlopen((url or base) + path, timeout=60) as r:
        return json.loads(r.read().decode())


def models(socket_path=None):
    """name -> {id, keep (per lease), bytes, devices} of every residency."""
    out = subprocess.run(ctl + ["--socket", socket_path or sock, "--json", "models"], capture_output=True,
                         text=True, check=True).stdout
    doc = json.loads(out)
    return {m["name"]: {"id": int(m["model_id"]),
                        "keep": [l.get("keep_loaded", False) for l in m.get("leases", [])],
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
        print(f"  {k} {tuple(a[k].shape)}: {'identical' if exact else f'max |diff| {diff:.3g} (max |value| {scale:.3g})'}")
        check(exact or diff <= 1e-4 * max(scale, 1.0), f"{what}: {k} equal")


def log_lines(start, needle="distorch"):
    with open(log, errors="replace") as f:
        f.seek(start)
        return [l.rstrip() for l in f if needle in l]


def log_size():
    return os.path.getsize(log)


# -- prompts ------------------------------------------------------------------

def broker(**inputs):
    opts = {"compute_device": "sim:0", "virtual_vram_gb": 0.0, "donor_device": "cpu",
            "expert_mode_allocations": "", "keep_loaded": False}
    opts.update(inputs)
    return opts


def unet_node(stock=False, keep=True):
    if stock:
        return {"class_type": "UNETLoader", "inputs": {"unet_name": UNET, "weight_dtype": "default"}}
    return {"class_type": "DistorchUNETLoader", "inputs": broker(
        unet_name=UNET, weight_dtype="default", expert_mode_allocations="sim:0,50%;sim:1,*",
        keep_loaded=keep)}


def clip_node(name, ctype, stock=False, alloc="", keep=False):
    if stock:
        return {"class_type": "CLIPLoader", "inputs": {"clip_name": name, "type": ctype}}
    return {"class_type": "DistorchCLIPLoader", "inputs": broker(
        clip_name=name, type=ctype, expert_mode_allocations=alloc, keep_loaded=keep)}


def probe(label, model=None, clip=None, digest=True):
    inputs = {"label": label, "digest": digest}
    if model:
        inputs["model"] = model
    if clip:
        inputs["clip"] = clip
    return {"class_type": "DistorchProbe", "inputs": inputs}


def unet_clip_prompt(label, stock=False, keep=True, clip=("clip_l.safetensors", "stable_diffusion", "")):
    return {"1": unet_node(stock, keep),
            "2": clip_node(clip[0], clip[1], stock, clip[2]),
            "3": probe(label, ["1", 0], ["2", 0])}


# -- flows ----------------------------------------------------------------------

state = {}


def flow_keep():
    """The original run: UNet kept, the chosen text encoder not."""
    prompt = unet_clip_prompt("keep_1", clip=(CLIP_FILE, CLIP_TYPE, CLIP_ALLOC))
    prompt["3"]["inputs"]["digest"] = CLIP_FILE == "clip_l.safetensors"
    run_prompt(prompt, "prompt 1")
    before = models()
    print("  resident after prompt 1:", summary(before))
    check(UNET in before and CLIP_FILE in before, "both models resident")
    free()
    after = wait_models(lambda m: CLIP_FILE not in m, "/free ejected the unflagged text encoder")
    check(after.get(UNET, {}).get("id") == before[UNET]["id"], "/free kept the UNet (same residency)")
    run_prompt(prompt, "prompt 2")
    again = models()
    check(again.get(UNET, {}).get("id") == before[UNET]["id"], "prompt 2 reused the kept UNet")


def flow_clip_l():
    run_prompt(outputs(unet_clip_prompt("clip_l_distorch"), "clip_l_distorch", ["1", 0], ["2", 0]),
               "distorch UNet + CLIP-L")
    m = models()
    print("  resident:", summary(m))
    check(UNET in m and "clip_l.safetensors" in m, "UNet and CLIP-L resident in distorchd")
    check(m[UNET]["keep"] == [True] and m["clip_l.safetensors"]["keep"] == [False],
          "keep_loaded flags as the nodes set them")
    state["unet_id"] = m[UNET]["id"]
    run_prompt(outputs(unet_clip_prompt("clip_l_stock", stock=True), "clip_l_stock", ["1", 0], ["2", 0]),
               "stock UNet + CLIP-L")
    same_weights("clip_l_distorch", "clip_l_stock", "distorch vs stock loaders")
    same_outputs("clip_l_distorch", "clip_l_stock", "text encoding and one sampler step, distorch vs stock")


def flow_free_kept():
    before = models()
    check(UNET in before and any(before[UNET]["keep"]), "a kept UNet is resident before /free")
    free()
    after = wait_models(lambda m: "clip_l.safetensors" not in m,
                        "/free ejected the unflagged CLIP-L")
    print("  resident after /free:", summary(after))
    check(after.get(UNET, {}).get("id") == before[UNET]["id"], "/free kept the UNet (same residency)")


def flow_reuse():
    unet_id = models().get(UNET, {}).get("id")
    check(unet_id is not None, "the kept UNet is resident before the second prompt")
    start = log_size()
    run_prompt(unet_clip_prompt("reuse"), "the clip_l prompt again")
    m = models()
    print("  resident:", summary(m))
    check(m.get(UNET, {}).get("id") == unet_id, "the kept UNet's residency reused (same model id)")
    check("clip_l.safetensors" in m, "the ejected CLIP-L loaded again")
    print("\n".join("  log: " + l for l in log_lines(start)[-6:]))
    if os.path.exists(os.path.join(PROBE_OUT, "clip_l_distorch.json")):
        same_weights("reuse", "clip_l_distorch", "the second prompt's weights equal the first's")


def flow_kept_unused():
    """docs/comfyui.md: keep_loaded=false models are released when ComfyUI stops using
    them; a kept one is not. A prompt without the UNet makes ComfyUI drop that node's
    output from its cache (the default classic cache keeps only the last prompt's)."""
    unet_id = models().get(UNET, {}).get("id")
    check(unet_id is not None, "the kept UNet is resident before a prompt that does not use it")
    start = log_size()
    run_prompt({"1": clip_node("clip_l.safetensors", "stable_diffusion"),
                "2": probe("kept_unused", clip=["1", 0], digest=False)}, "a prompt with CLIP-L only")
    deadline = time.time() + 8  # the client releases on a worker thread after GC
    while time.time() < deadline and models().get(UNET, {}).get("id") == unet_id:
        time.sleep(0.25)
    lines = [l for l in log_lines(start) if "released" in l]
    print("\n".join("  log: " + l for l in lines))
    check(models().get(UNET, {}).get("id") == unet_id,
          "the kept UNet stays resident when a prompt does not use it")


def flow_gemma2():
    start = log_size()
    prompt = {"1": clip_node("gemma2_2b.safetensors", "lumina2", alloc="sim:1,2gb;cpu,*"),
              "2": probe("gemma2", clip=["1", 0], digest=False)}
    run_prompt(prompt, "distorch Gemma 2 2B over sim:1 and cpu")
    m = models()
    check("gemma2_2b.safetensors" in m, "Gemma 2 2B resident in distorchd")
    print("  daemon:", json.dumps(m["gemma2_2b.safetensors"]["raw"])[:600])
    lines = log_lines(start)
    print("\n".join("  log: " + l for l in lines[-4:]))
    check(any("of broker memory used in place" in l for l in lines), "the node logged its summary")
    sums = probe_doc("gemma2")["sums"]
    print(f"  probe: sum of every weight {sums} (the file is zeros; ComfyUI sets a few itself)")
    free()
    wait_models(lambda m: "gemma2_2b.safetensors" not in m, "/free ejected Gemma 2 2B")


TRIPLE = ("clip_l.safetensors", "clip_g.safetensors", "t5xxl_fp8_e4m3fn.safetensors")


def flow_triple():
    start = log_size()
    prompt = {"1": {"class_type": "DistorchTripleCLIPLoader", "inputs": broker(
                  clip_name1=TRIPLE[0], clip_name2=TRIPLE[1], clip_name3=TRIPLE[2],
                  expert_mode_allocations="sim:0,30%;sim:1,20%;cpu,*")},
              "2": probe("triple", clip=["1", 0], digest=False)}
    run_prompt(prompt, "DistorchTripleCLIPLoader (CLIP-L, CLIP-G, T5-XXL fp8)")
    m = models()
    print("  resident:", summary(m))
    check(all(name in m for name in TRIPLE), "all three encoders resident in distorchd")
    lines = log_lines(start)
    print("\n".join("  log: " + l for l in lines[-4:]))
    free()
    wait_models(lambda m: not any(name in m for name in TRIPLE), "/free ejected the three encoders")


CKPT = "tiny_sd15.safetensors"


def safetensors_compare(saved, source, rename=lambda k: k, what=""):
    """Every tensor of `source` is in `saved` (under rename(key)) with equal bytes."""
    from safetensors import safe_open
    import torch
    with safe_open(saved, "pt") as s, safe_open(source, "pt") as r:
        saved_keys, source_keys = set(s.keys()), list(r.keys())
        missing = [k for k in source_keys if rename(k) not in saved_keys]
        differ = []
        for k in source_keys:
            if rename(k) in saved_keys:
                a, b = s.get_tensor(rename(k)), r.get_tensor(k)
                if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a, b):
                    differ.append(f"{k} ({a.dtype} {tuple(a.shape)} vs {b.dtype} {tuple(b.shape)})")
    print(f"  {os.path.basename(saved)}: {len(saved_keys)} tensors; source {len(source_keys)}; "
          f"missing {len(missing)} {missing[:4]}; differing {len(differ)} {differ[:4]}")
    check(not missing and not differ, f"{what}: the saved file equals the source")


def newest(pattern):
    files = sorted(glob.glob(os.path.join(OUTPUT, pattern)), key=os.path.getmtime)
    check(bool(files), f"a file {pattern} was written")
    return files[-1]


def flow_checkpoint():
    node = {"class_type": "DistorchCheckpointLoaderSimple", "inputs": broker(ckpt_name=CKPT)}
    run_prompt(outputs({"1": node, "2": probe("ckpt_distorch", ["1", 0], ["1", 1])}, "ckpt_distorch",
                       ["1", 0], ["1", 1]), "DistorchCheckpointLoaderSimple")
    m = models()
    check(CKPT in m, "the checkpoint resident in distorchd")
    run_prompt(outputs({"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
                        "2": probe("ckpt_stock", ["1", 0], ["1", 1])}, "ckpt_stock", ["1", 0], ["1", 1]),
               "stock CheckpointLoaderSimple")
    same_outputs("ckpt_distorch", "ckpt_stock", "text encoding and one sampler step, distorch vs stock")
    # An SD1 checkpoint has no CLIP text_projection; ComfyUI builds the layer with
    # torch.empty and never fills (or uses, or saves) it.
    same_weights("ckpt_distorch", "ckpt_stock", "distorch vs stock checkpoint loader",
                 ignore=("clip:clip_l.transformer.text_projection.weight",))
    state["ckpt_ok"] = True


def flow_checkpoint_save():
    node = {"class_type": "DistorchCheckpointLoaderSimple", "inputs": broker(ckpt_name=CKPT)}
    run_prompt({"1": node, "2": {"class_type": "CheckpointSave", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "filename_prefix": "checkpoints/distorch_ckpt"}}},
        "CheckpointSave of a distorch-loaded checkpoint")
    safetensors_compare(newest("checkpoints/distorch_ckpt_*.safetensors"),
                        os.path.join(MODELS, "checkpoints", CKPT), what="CheckpointSave")


LORA = "tiny_sd15_lora.safetensors"


def outputs(p, label, model, clip):
    """Adds CLIPTextEncode + a one-step KSampler on model/clip and an output probe."""
    p["5"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": clip, "text": "a photo of a cat"}}
    p["6"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    p["7"] = {"class_type": "KSampler", "inputs": {
        "model": model, "positive": ["5", 0], "negative": ["5", 0], "latent_image": ["6", 0],
        "seed": 1, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal",
        "denoise": 1.0}}
    p["8"] = {"class_type": "DistorchOutputProbe", "inputs": {
        "label": label, "conditioning": ["5", 0], "latent": ["7", 0]}}
    return p


def lora_prompt(label, stock, sm, sc):
    p = unet_clip_prompt(label, stock=stock)
    p["4"] = {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["2", 0],
                                                      "lora_name": LORA, "strength_model": sm,
                                                      "strength_clip": sc}}
    p["3"] = probe(label, ["4", 0], ["4", 1])
    return outputs(p, label, ["4", 0], ["4", 1])


def flow_lora():
    for sm, sc in ((1.0, 1.0), (0.5, -0.25)):
        tag = f"{sm:g}_{sc:g}"
        start = log_size()
        run_prompt(lora_prompt(f"lora_distorch_{tag}", False, sm, sc), f"distorch loaders + LoRA {tag}")
        print("\n".join("  log: " + l for l in log_lines(start)[-3:]))
        run_prompt(lora_prompt(f"lora_stock_{tag}", True, sm, sc), f"stock loaders + LoRA {tag}")
        same_outputs(f"lora_distorch_{tag}", f"lora_stock_{tag}",
                     f"LoRA {tag}: text encoding and one sampler step, distorch vs stock")
        same_weights(f"lora_distorch_{tag}", f"lora_stock_{tag}",
                     f"LoRA {tag}: patched parameters as the probe reads them", strict=False)
    a = probe_doc("lora_stock_1_1")["weights"]
    b = probe_doc("lora_stock_0.5_-0.25")["weights"]
    check(sum(a[k][0] != b[k][0] for k in a) >= 8, "the strength change changed the stock patched weights")
    run_prompt(outputs(unet_clip_prompt("lora_base_after"), "lora_base_after", ["1", 0], ["2", 0]),
               "distorch loaders without the LoRA")
    run_prompt(outputs(unet_clip_prompt("lora_base_stock", stock=True), "lora_base_stock", ["1", 0], ["2", 0]),
               "stock loaders without the LoRA")
    same_outputs("lora_base_after", "lora_base_stock", "after the LoRA: outputs without it, distorch vs stock")
    same_weights("lora_base_after", "lora_base_stock", "after the LoRA the shared base is unchanged")


def flow_save():
    prompt = {"1": unet_node(), "2": clip_node("clip_l.safetensors", "stable_diffusion"),
              "3": {"class_type": "ModelSave", "inputs": {"model": ["1", 0],
                                                          "filename_prefix": "diffusion_models/distorch_unet"}},
              "4": {"class_type": "CLIPSave", "inputs": {"clip": ["2", 0], "filename_prefix": "clip/distorch_clip"}}}
    run_prompt(prompt, "ModelSave + CLIPSave of distorch-loaded models")
    safetensors_compare(newest("diffusion_models/distorch_unet_*.safetensors"),
                        os.path.join(MODELS, "diffusion_models", UNET), what="ModelSave")
    safetensors_compare(newest("clip/distorch_clip*.safetensors"),
                        os.path.join(MODELS, "text_encoders", "clip_l.safetensors"), what="CLIPSave")


def files_close(a_path, b_path, what):
    """Two saved files: the same tensors, equal or within fp16 rounding of LoRA math."""
    from safetensors import safe_open
    import torch
    with safe_open(a_path, "pt") as a, safe_open(b_path, "pt") as b:
        ka, kb = set(a.keys()), set(b.keys())
        check(ka == kb, f"{what}: the same {len(ka)} tensor names ({sorted(ka ^ kb)[:4]})")
        exact, close, far = 0, [], []
        for k in sorted(ka):
            x, y = a.get_tensor(k), b.get_tensor(k)
            if x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y):
                exact += 1
                continue
            d = float((x.float() - y.float()).abs().max()) if x.shape == y.shape else float("inf")
            (close if d <= 2e-3 * max(float(y.float().abs().max()), 1.0) else far).append((k, d))
    print(f"  {os.path.basename(a_path)} vs {os.path.basename(b_path)}: {exact} identical, "
          f"{len(close)} within rounding {close[:3]}, {len(far)} different {far[:4]}")
    check(not far, f"{what}: every tensor equal to the stock save's")


def flow_save_lora():
    """ModelSave/CLIPSave of LoRA'd models: distorch's (the patches live in the cast
    path) must write the patched weights, as the stock loaders' save does."""
    for stock in (False, True):
        tag = "stock" if stock else "distorch"
        p = lora_prompt(f"save_lora_{tag}", stock, 1.0, 1.0)
        for k in ("3", "5", "6", "7", "8"):
            p.pop(k)
        p["9"] = {"class_type": "ModelSave", "inputs": {"model": ["4", 0],
                                                        "filename_prefix": f"diffusion_models/lora_{tag}"}}
        p["10"] = {"class_type": "CLIPSave", "inputs": {"clip": ["4", 1], "filename_prefix": f"clip/lora_{tag}"}}
        run_prompt(p, f"ModelSave + CLIPSave after LoraLoader ({tag} loaders)")
    files_close(newest("diffusion_models/lora_distorch_*.safetensors"),
                newest("diffusion_models/lora_stock_*.safetensors"), "ModelSave of a LoRA'd UNet")
    files_close(newest("clip/lora_distorch*.safetensors"),
                newest("clip/lora_stock*.safetensors"), "CLIPSave of a LoRA'd CLIP-L")
    from safetensors import safe_open
    import torch
    changed = 0
    for saved, source in ((newest("diffusion_models/lora_distorch_*.safetensors"),
                           os.path.join(MODELS, "diffusion_models", UNET)),
                          (newest("clip/lora_distorch*.safetensors"),
                           os.path.join(MODELS, "text_encoders", "clip_l.safetensors"))):
        with safe_open(saved, "pt") as a, safe_open(source, "pt") as b:
            changed += sum(not torch.equal(a.get_tensor(k), b.get_tensor(k))
                           for k in b.keys() if k in set(a.keys()))
    check(changed == 8, f"the saves hold the 8 LoRA'd weights patched ({changed} differ from the sources)")


def gguf_flow(name, label):
    start = log_size()
    run_prompt({"1": {"class_type": "DistorchUnetLoaderGGUF", "inputs": broker(unet_name=name)},
                "2": probe(f"{label}_distorch", ["1", 0])}, f"DistorchUnetLoaderGGUF {name}")
    lines = log_lines(start)
    print("\n".join("  log: " + l for l in lines[-3:]))
    m = models()
    check(name in m, f"{name} resident in distorchd")
    check(any("GGUF tensors on broker memory" in l for l in lines), "the GGUF tensors were rebound")
    run_prompt({"1": {"class_type": "UnetLoaderGGUF", "inputs": {"unet_name": name}},
                "2": probe(f"{label}_stock", ["1", 0])}, f"stock UnetLoaderGGUF {name}")
    same_weights(f"{label}_distorch", f"{label}_stock", "distorch vs stock GGUF loader")


def flow_gguf():
    gguf_flow("tiny_sd15_f16.gguf", "gguf_f16")


def flow_gguf_q8():
    gguf_flow("tiny_sd15_q8_0.gguf", "gguf_q8")


def flow_free_all():
    # The UNet again with keep_loaded=false: no model of this instance is kept now.
    run_prompt(unet_clip_prompt("free_all", keep=False), "UNet + CLIP-L, nothing kept")
    m = models()
    check(UNET in m and m[UNET]["keep"] == [False], "the UNet's flag is now keep_loaded=false")
    free()
    left = wait_models(lambda m: not m, "/free released every residency")
    check(not left, "no residency left")


# -- ComfyUI-MultiGPU workflows (docs/comfyui.md "Coming from ComfyUI-MultiGPU") ------
#
# API-format prompts shaped like what a ComfyUI-MultiGPU user saved: MultiGPU's node
# names and inputs, with the broker's sim:0/sim:1 where a user wrote cuda:0/cuda:1.
# Each flow starts from no residency of its files (evicted if an earlier flow left one)
# and ends with /free releasing what it loaded.

GiB, MiB = 1 << 30, 1 << 20
VAE_FILE = "tiny_sd15_vae.safetensors"
GGUF_Q8, GGUF_F16 = "tiny_sd15_q8_0.gguf", "tiny_sd15_f16.gguf"
WORK = os.environ.get("DISTORCH_REAL_WORK", "")


def residencies(name=None, socket_path=None):
    """Every residency (raw `distorchctl --json models` entries), or those of one file."""
    out = subprocess.run(ctl + ["--socket", socket_path or sock, "--json", "models"],
                         capture_output=True, text=True, check=True).stdout
    return [m for m in json.loads(out).get("models", []) if name is None or m["name"] == name]


def placed(m):
    """{device: bytes} of one residency (devices holding nothing left out)."""
    return {d["device"]: int(d.get("bytes", 0)) for d in m.get("devices", []) if int(d.get("bytes", 0))}


def keeps(m):
    return [l.get("keep_loaded", False) for l in m.get("leases", [])]


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
            subprocess.run(ctl + ["--socket", sock, "evict", str(m["model_id"])], capture_output=True)
    wait_models(lambda m: not any(n in m for n in names), f"no residency of {names}")


def free_and_wait(*names):
    free()
    wait_models(lambda m: not any(n in m for n in names), f"/free released {', '.join(names)}")


def wait_log(start, needle, what, timeout=60.0, path=None):
    """Polls a ComfyUI log (from `start`) for a line containing needle."""
    deadline = time.time() + timeout
    while True:
        with open(path or log, errors="replace") as f:
            f.seek(start)
            hits = [l.rstrip() for l in f if needle in l]
        if hits:
            return hits
        if time.time() > deadline:
            raise FlowFailed(f"{what} (no {needle!r} in the log within {timeout:.0f} s)")
        time.sleep(0.25)


def free_kept_check(name, m):
    """/free, and once ComfyUI has run it (its unload_all_models line), the kept
    residency `m` of `name` is still there."""
    start = log_size()
    free()
    line = wait_log(start, "unload_all_models", "ComfyUI ran the /free")[-1]
    print("  log:", line.split("distorch: ", 1)[-1])
    after = residencies(name)
    check([x["model_id"] for x in after] == [m["model_id"]], f"{name} kept across /free (same residency)")


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


def node_log(start, node_type, *needles):
    lines = [l for l in log_lines(start) if f"distorch: {node_type}" in l]
    print("\n".join("  log: " + l.split("distorch: ", 1)[-1][:400] for l in lines[:2]))
    check(bool(lines), f"{node_type} logged its request")
    for n in needles:
        check(any(n in l for l in lines), f"{node_type}'s log says {n!r}")


def stock_probe(label, node):
    """A stock loader's probe digest, once per run (the reference for byte equality)."""
    if not os.path.exists(os.path.join(PROBE_OUT, f"{label}.json")):
        run_prompt({"1": node, "2": probe(label, ["1", 0])}, f"stock {node['class_type']}")
    return label


def mg(class_type, **inputs):
    return {"class_type": class_type, "inputs": inputs}


def unet_distorch2(**kw):
    inputs = dict(unet_name=UNET, weight_dtype="default", compute_device="sim:0", virtual_vram_gb=4.0,
                  donor_device="cpu", expert_mode_allocations="", eject_models=True)
    inputs.update(kw)
    return mg("UNETLoaderDisTorch2MultiGPU", **inputs)


def clip_distorch2(**kw):
    inputs = dict(clip_name="clip_l.safetensors", type="stable_diffusion", device="sim:0",
                  virtual_vram_gb=0.0, donor_device="cpu", expert_mode_allocations="", eject_models=False)
    inputs.update(kw)
    return mg("CLIPLoaderDisTorch2MultiGPU", **inputs)


MGPU_NAMES = [f"{b}{s}" for s in ("MultiGPU", "DisTorch2MultiGPU") for b in (
    "UNETLoader", "VAELoader", "CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader", "QuadrupleCLIPLoader",
    "CLIPVisionLoader", "CheckpointLoaderSimple", "ControlNetLoader", "DiffusersLoader",
    "DiffControlNetLoader")] + ["CheckpointLoaderAdvancedMultiGPU", "CheckpointLoaderAdvancedDisTorch2MultiGPU",
                                "DeviceSelectorMultiGPU", "UNetLoaderLP"]
MGPU_GGUF = [f"{b}{s}" for s in ("MultiGPU", "DisTorch2MultiGPU", "DisTorchMultiGPU") for b in (
    "UnetLoaderGGUF", "UnetLoaderGGUFAdvanced", "CLIPLoaderGGUF", "DualCLIPLoaderGGUF",
    "TripleCLIPLoaderGGUF", "QuadrupleCLIPLoaderGGUF")]
DISTORCH2 = ["virtual_vram_gb", "donor_device", "expert_mode_allocations", "eject_models"]
LEGACY = ["device", "virtual_vram_gb", "use_other_vram", "expert_mode_allocations"]


def flow_mgpu_names():
    """MultiGPU's names in /object_info, inputs in the order saved workflows keep their
    widget values in, device combos = the broker's devices (cpu first, default the
    first accelerator)."""
    info = get("/object_info")
    names = MGPU_NAMES + (MGPU_GGUF if "UnetLoaderGGUF" in info else [])
    missing = [n for n in names if n not in info]
    check(not missing, f"{len(names) - len(missing)} of {len(names)} MultiGPU node names registered (missing {missing})")

    def order(name):
        o = info[name].get("input_order", {})
        return o.get("required", []) + o.get("optional", [])

    def stock(name):
        return [i for i in order(name) if i != "device"]
    expected = {
        "UNETLoaderDisTorch2MultiGPU": stock("UNETLoader") + ["compute_device"] + DISTORCH2,
        "CLIPLoaderDisTorch2MultiGPU": stock("CLIPLoader") + ["device"] + DISTORCH2,
        "CLIPLoaderMultiGPU": stock("CLIPLoader") + ["device"],
        "DualCLIPLoaderMultiGPU": stock("DualCLIPLoader") + ["device"],
        "TripleCLIPLoaderDisTorch2MultiGPU": stock("TripleCLIPLoader") + ["device"] + DISTORCH2,
        "VAELoaderMultiGPU": stock("VAELoader") + ["device"],
        "VAELoaderDisTorch2MultiGPU": stock("VAELoader") + ["compute_device"] + DISTORCH2,
        "CheckpointLoaderSimpleDisTorch2MultiGPU": stock("CheckpointLoaderSimple") + ["compute_device"] + DISTORCH2,
        "CheckpointLoaderAdvancedDisTorch2MultiGPU": [
            "ckpt_name", "unet_compute_device", "unet_virtual_vram_gb", "unet_donor_device",
            "clip_compute_device", "clip_virtual_vram_gb", "clip_donor_device", "vae_device",
            "unet_expert_mode_allocations", "clip_expert_mode_allocations", "high_precision_loras",
            "eject_models"],
    }
    if "UnetLoaderGGUF" in info:
        expected["UnetLoaderGGUFDisTorch2MultiGPU"] = stock("UnetLoaderGGUF") + ["compute_device"] + DISTORCH2
        expected["UnetLoaderGGUFDisTorchMultiGPU"] = stock("UnetLoaderGGUF") + LEGACY
    for name, want in expected.items():
        check(order(name) == want, f"{name}: inputs {order(name)}")
    broker_devices = [d["name"] for d in json.loads(subprocess.run(
        ctl + ["--socket", sock, "--json", "devices"], capture_output=True, text=True, check=True).stdout)["devices"]]
    want_combo = ["cpu"] + [d for d in broker_devices if d != "cpu"]
    for name, field in (("UNETLoaderDisTorch2MultiGPU", "compute_device"), ("CLIPLoaderMultiGPU", "device"),
                        ("TripleCLIPLoaderDisTorch2MultiGPU", "device")):
        spec = info[name]["input"].get("optional", {}).get(field) or info[name]["input"]["required"][field]
        options = spec[0] if isinstance(spec[0], list) else spec[1].get("options")
        check(options == want_combo and spec[1].get("default") == want_combo[1],
              f"{name}.{field}: {options}, default {spec[1].get('default')!r} (the broker's devices {broker_devices})")
    check(info["UNETLoaderDisTorch2MultiGPU"]["input"]["optional"]["virtual_vram_gb"][1].get("default") == 4.0
          and info["CLIPLoaderDisTorch2MultiGPU"]["input"]["optional"]["eject_models"][1].get("default") is False
          and info["UNETLoaderDisTorch2MultiGPU"]["input"]["optional"]["eject_models"][1].get("default") is True,
          "MultiGPU's defaults: virtual_vram_gb 4.0, eject_models True (False on the CLIP family)")


def flow_mgpu_unet_vram():
    """UNETLoaderDisTorch2MultiGPU as in MultiGPU's "double_unet no_cpu" workflow:
    compute cuda:0 -> sim:0, 0.05 GB of virtual VRAM onto the donor sim:1."""
    fresh(UNET)
    start = log_size()
    run_prompt({"1": unet_distorch2(virtual_vram_gb=0.05, donor_device="sim:1"),
                "2": probe("mg_unet_vram", ["1", 0])}, "UNETLoaderDisTorch2MultiGPU (0.05 GB onto sim:1)")
    m = one(UNET)
    check_virtual_vram(m, "sim:0", 0.05, ["sim:1"], "UNet")
    check(keeps(m) == [False], "eject_models=True: the lease is not kept")
    node_log(start, "UNETLoaderDisTorch2MultiGPU", "compute sim:0",
             "MultiGPU's allocation string would be '#sim:0;0.05;sim:1'")
    check_probe("mg_unet_vram", "model", "sim:0", {"sim:0", "sim:1"}, "UNet", res=m)
    same_weights("mg_unet_vram", stock_probe("mg_stock_unet", unet_node(stock=True)),
                 "UNETLoaderDisTorch2MultiGPU vs stock UNETLoader")
    free_and_wait(UNET)


def flow_mgpu_expert_bytes():
    """expert_mode_allocations in bytes form wins over virtual_vram_gb (left at
    MultiGPU's default 4.0 onto cpu); eject_models=False keeps it across /free,
    then the same node with eject_models=True lets /free release it."""
    fresh(UNET)
    start = log_size()
    node = unet_distorch2(expert_mode_allocations="sim:0,40mb;sim:1,*", eject_models=False)
    run_prompt({"1": node, "2": probe("mg_expert_bytes", ["1", 0], digest=False)},
               "UNETLoaderDisTorch2MultiGPU, expert 'sim:0,40mb;sim:1,*'")
    m = one(UNET)
    p = placed(m)
    check("41943040b" in m.get("allocation", "") and m.get("compute_device") == "sim:0",
          f"the recorded allocation is the expert string ({m.get('allocation')!r}), compute sim:0")
    check(set(p) == {"sim:0", "sim:1"} and 0 < p["sim:0"] <= 40 * MiB,
          "at most 40 MiB on sim:0, the rest on sim:1, nothing on cpu (virtual_vram_gb ignored)")
    check(keeps(m) == [True], "eject_models=False: the lease is kept")
    node_log(start, "UNETLoaderDisTorch2MultiGPU", "'sim:0,40mb;sim:1,*'",
             "MultiGPU's allocation string would be 'sim:0,40mb;sim:1,*#sim:0;4.0;cpu'")
    check_probe("mg_expert_bytes", "model", "sim:0", {"sim:0", "sim:1"}, "UNet", res=m)
    free_kept_check(UNET, m)
    node["inputs"]["eject_models"] = True
    run_prompt({"1": node, "2": probe("mg_expert_bytes_2", ["1", 0], digest=False)}, "the same, eject_models=True")
    m2 = one(UNET)
    check(m2["model_id"] == m["model_id"] and keeps(m2) == [False], "the same residency, no longer kept")
    free_and_wait(UNET)


def flow_mgpu_expert_logged():
    """MultiGPU's logged strings pasted into expert_mode_allocations: the UNet with
    'EXPERT#COMPUTE;GB;DONORS' (the expert entries win), CLIP-L with '#COMPUTE;GB;DONORS'
    (virtual VRAM)."""
    fresh(UNET, "clip_l.safetensors")
    start = log_size()
    run_prompt({"1": unet_distorch2(compute_device="sim:1", expert_mode_allocations="sim:1,50%;cpu,*#sim:1;4.0;cpu"),
                "2": clip_distorch2(device="sim:0", expert_mode_allocations="#sim:0;0.1;sim:1", eject_models=True),
                "3": probe("mg_expert_logged", ["1", 0], ["2", 0], digest=False)},
               "UNet 'sim:1,50%;cpu,*#sim:1;4.0;cpu' + CLIP-L '#sim:0;0.1;sim:1'")
    u = one(UNET)
    p = placed(u)
    check(u.get("allocation", "").startswith("sim:1,50%;cpu,*") and u.get("compute_device") == "sim:1",
          f"UNet: the expert entries recorded ({u.get('allocation')!r}), compute sim:1")
    share = p.get("sim:1", 0) / max(1, sum(p.values()))
    check(set(p) == {"sim:1", "cpu"} and 0.3 < share < 0.7, f"UNet: {share:.0%} on sim:1, the rest on cpu")
    check_virtual_vram(one("clip_l.safetensors"), "sim:0", 0.1, ["sim:1"], "CLIP-L")
    node_log(start, "UNETLoaderDisTorch2MultiGPU", "'sim:1,50%;cpu,*#sim:1;4.0;cpu'")
    node_log(start, "CLIPLoaderDisTorch2MultiGPU", "'#sim:0;0.1;sim:1'")
    check_probe("mg_expert_logged", "model", "sim:1", {"sim:1", "cpu"}, "UNet", res=u)
    check_probe("mg_expert_logged", "clip", "sim:0", {"sim:0", "sim:1"}, "CLIP-L", res=one("clip_l.safetensors"))
    free_and_wait(UNET, "clip_l.safetensors")


def flow_mgpu_clip_device():
    """Device-only CLIP loaders (MultiGPU's flux/starter workflows): CLIPLoaderMultiGPU
    on sim:1, then DualCLIPLoaderMultiGPU (CLIP-L + CLIP-G) on sim:0: each file whole on
    that device; /free releases them (device-only nodes do not keep)."""
    fresh("clip_l.safetensors", "clip_g.safetensors")
    start = log_size()
    run_prompt({"1": mg("CLIPLoaderMultiGPU", clip_name="clip_l.safetensors", type="stable_diffusion", device="sim:1"),
                "2": probe("mg_clip_device", clip=["1", 0], digest=False)}, "CLIPLoaderMultiGPU on sim:1")
    m = one("clip_l.safetensors")
    check_whole_on(m, "sim:1", "CLIP-L")
    check(keeps(m) == [False], "a device-only node does not keep")
    node_log(start, "CLIPLoaderMultiGPU", "compute sim:1", "the whole model on sim:1")
    check_probe("mg_clip_device", "clip", "sim:1", {"sim:1"}, "CLIP-L", res=m)
    free_and_wait("clip_l.safetensors")
    run_prompt({"1": mg("DualCLIPLoaderMultiGPU", clip_name1="clip_l.safetensors", clip_name2="clip_g.safetensors",
                        type="sdxl", device="sim:0"),
                "2": probe("mg_dual_device", clip=["1", 0], digest=False)}, "DualCLIPLoaderMultiGPU on sim:0")
    for name in ("clip_l.safetensors", "clip_g.safetensors"):
        check_whole_on(one(name), "sim:0", name)
    check_probe("mg_dual_device", "clip", "sim:0", {"sim:0"}, "CLIP-L + CLIP-G")
    free_and_wait("clip_l.safetensors", "clip_g.safetensors")


def flow_mgpu_triple():
    """TripleCLIPLoaderDisTorch2MultiGPU (a V3 node in ComfyUI 0.33): compute sim:0,
    2 GB of each encoder onto sim:1."""
    fresh(*TRIPLE)
    start = log_size()
    run_prompt({"1": mg("TripleCLIPLoaderDisTorch2MultiGPU", clip_name1=TRIPLE[0], clip_name2=TRIPLE[1],
                        clip_name3=TRIPLE[2], device="sim:0", virtual_vram_gb=2.0, donor_device="sim:1",
                        expert_mode_allocations="", eject_models=True),
                "2": probe("mg_triple", clip=["1", 0], digest=False)}, "TripleCLIPLoaderDisTorch2MultiGPU")
    for name in TRIPLE:
        m = one(name)
        check_virtual_vram(m, "sim:0", 2.0, ["sim:1"], name)
        check(keeps(m) == [False], f"{name}: eject_models=True, not kept")
    node_log(start, "TripleCLIPLoaderDisTorch2MultiGPU", "MultiGPU's allocation string would be '#sim:0;2.0;sim:1'")
    check_probe("mg_triple", "clip", "sim:0", {"sim:0", "sim:1"}, "the triple encoder")
    free_and_wait(*TRIPLE)


def flow_mgpu_checkpoint():
    """CheckpointLoaderSimpleDisTorch2MultiGPU (MultiGPU's LTX-Video workflow): compute
    sim:0, 0.3 GB onto sim:1; the model, CLIP and VAE byte-equal to the stock loader's."""
    fresh(CKPT)
    start = log_size()
    run_prompt({"1": mg("CheckpointLoaderSimpleDisTorch2MultiGPU", ckpt_name=CKPT, compute_device="sim:0",
                        virtual_vram_gb=0.3, donor_device="sim:1", expert_mode_allocations="", eject_models=True),
                "2": {"class_type": "DistorchProbe", "inputs": {"label": "mg_ckpt", "model": ["1", 0],
                                                               "clip": ["1", 1], "vae": ["1", 2]}}},
               "CheckpointLoaderSimpleDisTorch2MultiGPU")
    found = residencies(CKPT)
    for m in found:
        print("  daemon:", describe(m))
    check(bool(found), "the checkpoint resident in distorchd")
    for m in found:  # one residency, or one per part of the file
        check_virtual_vram(m, "sim:0", 0.3, ["sim:1"], f"checkpoint{' part' if m.get('tensor_prefixes') else ''}")
    node_log(start, "CheckpointLoaderSimpleDisTorch2MultiGPU", "'#sim:0;0.3;sim:1'")
    check_probe("mg_ckpt", "model", "sim:0", {"sim:0", "sim:1"}, "the UNet")
    if not os.path.exists(os.path.join(PROBE_OUT, "mg_ckpt_stock.json")):
        run_prompt({"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
                    "2": {"class_type": "DistorchProbe", "inputs": {"label": "mg_ckpt_stock", "model": ["1", 0],
                                                                   "clip": ["1", 1], "vae": ["1", 2]}}},
                   "stock CheckpointLoaderSimple")
    same_weights("mg_ckpt", "mg_ckpt_stock", "CheckpointLoaderSimpleDisTorch2MultiGPU vs stock",
                 ignore=("clip:clip_l.transformer.text_projection.weight",))
    free_and_wait(CKPT)


def _ckpt_parts(expect, what):
    """The checkpoint's residencies as parts: expect maps a prefix ('model.diffusion_model',
    'cond_stage_model', 'first_stage_model') to a check of that part."""
    found = residencies(CKPT)
    for m in found:
        print("  daemon:", describe(m))
    if len(found) == 1 and not found[0].get("tensor_prefixes"):
        raise FlowFailed(f"{what}: one residency for the whole checkpoint, placed as "
                         f"{found[0].get('allocation')!r} on {found[0].get('compute_device')!r} "
                         f"({ {d: mib(b) for d, b in placed(found[0]).items()} }): separate UNet/CLIP/VAE "
                         f"allocations are not applied")
    for prefix, checker in expect.items():
        parts = [m for m in found if any(p.startswith(prefix) for p in m.get("tensor_prefixes", []))]
        check(len(parts) == 1, f"{what}: one residency holds the {prefix}. part ({len(parts)})")
        checker(parts[0])


def flow_mgpu_ckpt_advanced():
    """CheckpointLoaderAdvancedDisTorch2MultiGPU (MultiGPU's Mochi workflow): the UNet on
    sim:0 with 0.05 GB onto sim:1, the CLIP on sim:1 with 0.1 GB onto cpu, the VAE on
    sim:1; then CheckpointLoaderAdvancedMultiGPU (the SDXL workflow's devices: UNet sim:0,
    CLIP cpu, VAE sim:1). Each part must be placed as its inputs say."""
    fresh(CKPT)
    start = log_size()
    run_prompt({"1": mg("CheckpointLoaderAdvancedDisTorch2MultiGPU", ckpt_name=CKPT, unet_compute_device="sim:0",
                        unet_virtual_vram_gb=0.05, unet_donor_device="sim:1", clip_compute_device="sim:1",
                        clip_virtual_vram_gb=0.1, clip_donor_device="cpu", vae_device="sim:1",
                        unet_expert_mode_allocations="", clip_expert_mode_allocations="",
                        high_precision_loras=True, eject_models=True),
                "2": {"class_type": "DistorchProbe", "inputs": {"label": "mg_ckpt_adv", "model": ["1", 0],
                                                               "clip": ["1", 1], "vae": ["1", 2], "digest": False}}},
               "CheckpointLoaderAdvancedDisTorch2MultiGPU")
    print("\n".join("  log: " + l.split("distorch: ", 1)[-1][:400] for l in log_lines(start)
                    if "CheckpointLoaderAdvanced" in l or CKPT in l))
    _ckpt_parts({"model.diffusion_model": lambda m: check_virtual_vram(m, "sim:0", 0.05, ["sim:1"], "UNet part"),
                 "cond_stage_model": lambda m: check_virtual_vram(m, "sim:1", 0.1, ["cpu"], "CLIP part"),
                 "first_stage_model": lambda m: check_whole_on(m, "sim:1", "VAE part")},
                "CheckpointLoaderAdvancedDisTorch2MultiGPU")
    free_and_wait(CKPT)
    run_prompt({"1": mg("CheckpointLoaderAdvancedMultiGPU", ckpt_name=CKPT, unet_device="sim:0",
                        clip_device="cpu", vae_device="sim:1"),
                "2": {"class_type": "DistorchProbe", "inputs": {"label": "mg_ckpt_adv_dev", "model": ["1", 0],
                                                               "clip": ["1", 1], "vae": ["1", 2], "digest": False}}},
               "CheckpointLoaderAdvancedMultiGPU")
    _ckpt_parts({"model.diffusion_model": lambda m: check_whole_on(m, "sim:0", "UNet part"),
                 "cond_stage_model": lambda m: check_whole_on(m, "cpu", "CLIP part"),
                 "first_stage_model": lambda m: check_whole_on(m, "sim:1", "VAE part")},
                "CheckpointLoaderAdvancedMultiGPU")
    free_and_wait(CKPT)
    # In the process: each model's tensors where its part is, and distorch's record of
    # where it computes (both prompts checked before a failure is raised).
    failed = []
    for label, which, compute, on in (("mg_ckpt_adv", "model", "sim:0", {"sim:0", "sim:1"}),
                                      ("mg_ckpt_adv", "clip", "sim:1", {"sim:1", "cpu"}),
                                      ("mg_ckpt_adv", "vae", "sim:1", {"sim:1"}),
                                      ("mg_ckpt_adv_dev", "model", "sim:0", {"sim:0"}),
                                      ("mg_ckpt_adv_dev", "clip", "cpu", {"cpu"}),
                                      ("mg_ckpt_adv_dev", "vae", "sim:1", {"sim:1"})):
        try:
            check_probe(label, which, compute, on, f"{label} {which}")
        except FlowFailed as e:
            failed.append(str(e))
    check(not failed, f"the probe's view of the six models ({'; '.join(failed)})")


def flow_mgpu_vae():
    """VAELoaderMultiGPU on sim:1 (the VAE on the second GPU, as in MultiGPU's flux
    workflows), then VAELoaderDisTorch2MultiGPU with virtual_vram_gb 0 on sim:0 (the Wan
    workflows): the whole VAE on that device."""
    fresh(VAE_FILE)
    start = log_size()
    run_prompt({"1": mg("VAELoaderMultiGPU", vae_name=VAE_FILE, device="sim:1"),
                "2": {"class_type": "DistorchProbe", "inputs": {"label": "mg_vae", "vae": ["1", 0], "digest": False}}},
               "VAELoaderMultiGPU on sim:1")
    m = one(VAE_FILE)
    check_whole_on(m, "sim:1", "VAE")
    node_log(start, "VAELoaderMultiGPU", "compute sim:1")
    check_probe("mg_vae", "vae", "sim:1", {"sim:1"}, "VAE", res=m)
    free_and_wait(VAE_FILE)
    run_prompt({"1": mg("VAELoaderDisTorch2MultiGPU", vae_name=VAE_FILE, compute_device="sim:0", virtual_vram_gb=0.0,
                        donor_device="cpu", expert_mode_allocations="", eject_models=True),
                "2": {"class_type": "DistorchProbe", "inputs": {"label": "mg_vae2", "vae": ["1", 0], "digest": False}}},
               "VAELoaderDisTorch2MultiGPU on sim:0, no virtual VRAM")
    m = one(VAE_FILE)
    check_whole_on(m, "sim:0", "VAE")
    check_probe("mg_vae2", "vae", "sim:0", {"sim:0"}, "VAE", res=m)
    free_and_wait(VAE_FILE)


def flow_mgpu_gguf():
    """ComfyUI-GGUF through MultiGPU's names: UnetLoaderGGUFDisTorch2MultiGPU on the Q8_0
    file (0.01 GB onto cpu; weights byte-equal to UnetLoaderGGUF's) and the legacy
    UnetLoaderGGUFDisTorchMultiGPU on the F16 file with use_other_vram (donors: the other
    accelerator sim:1, then cpu)."""
    fresh(GGUF_Q8, GGUF_F16)
    start = log_size()
    run_prompt({"1": mg("UnetLoaderGGUFDisTorch2MultiGPU", unet_name=GGUF_Q8, compute_device="sim:0",
                        virtual_vram_gb=0.01, donor_device="cpu", expert_mode_allocations="", eject_models=True),
                "2": probe("mg_gguf_q8", ["1", 0]),
                "3": mg("UnetLoaderGGUFDisTorchMultiGPU", unet_name=GGUF_F16, device="sim:0", virtual_vram_gb=0.01,
                        use_other_vram=True, expert_mode_allocations=""),
                "4": probe("mg_gguf_f16", ["3", 0], digest=False)},
               "UnetLoaderGGUFDisTorch2MultiGPU (Q8_0) + UnetLoaderGGUFDisTorchMultiGPU (F16, use_other_vram)")
    q8 = one(GGUF_Q8)
    check_virtual_vram(q8, "sim:0", 0.01, ["cpu"], "Q8_0")
    f16 = one(GGUF_F16)
    check_virtual_vram(f16, "sim:0", 0.01, ["sim:1", "cpu"], "F16 (legacy, use_other_vram)")
    check(keeps(f16) == [False], "the legacy node has no eject input: not kept")
    node_log(start, "UnetLoaderGGUFDisTorch2MultiGPU", "'#sim:0;0.01;cpu'")
    node_log(start, "UnetLoaderGGUFDisTorchMultiGPU", "donors=sim:1,cpu")
    check(any("GGUF tensors on broker memory" in l for l in log_lines(start)), "the GGUF tensors were rebound")
    check_probe("mg_gguf_q8", "model", "sim:0", {"sim:0", "cpu"}, "Q8_0 UNet")
    check_probe("mg_gguf_f16", "model", "sim:0", {"sim:0", "sim:1"}, "F16 UNet")
    same_weights("mg_gguf_q8", stock_probe("mg_gguf_q8_stock", mg("UnetLoaderGGUF", unet_name=GGUF_Q8)),
                 "UnetLoaderGGUFDisTorch2MultiGPU vs stock UnetLoaderGGUF (Q8_0)")
    free_and_wait(GGUF_Q8, GGUF_F16)


def flow_mgpu_eject():
    """eject_models across /free, in one prompt as MultiGPU's Qwen-Image workflow has it:
    the UNet (eject_models=True) is released, CLIP-L (eject_models=False, the CLIP
    family's default) stays; the CLIP node run again with eject_models=True lets the
    next /free release it."""
    fresh(UNET, "clip_l.safetensors")
    run_prompt({"1": unet_distorch2(virtual_vram_gb=0.05, donor_device="cpu"),
                "2": clip_distorch2(device="sim:1"),
                "3": probe("mg_eject", ["1", 0], ["2", 0], digest=False)},
               "UNET (eject_models=True) + CLIP (eject_models=False) DisTorch2 loaders")
    u, c = one(UNET), one("clip_l.safetensors")
    check(keeps(u) == [False] and keeps(c) == [True], "leases: UNet not kept, CLIP-L kept")
    check_whole_on(c, "sim:1", "CLIP-L")
    free()
    wait_models(lambda ms: UNET not in ms, "/free released the UNet (eject_models=True)")
    after = residencies("clip_l.safetensors")
    check([x["model_id"] for x in after] == [c["model_id"]], "/free kept CLIP-L (eject_models=False)")
    run_prompt({"1": clip_distorch2(device="sim:1", eject_models=True),
                "2": probe("mg_eject_2", clip=["1", 0], digest=False)}, "the CLIP node with eject_models=True")
    c2 = one("clip_l.safetensors")
    check(c2["model_id"] == c["model_id"] and keeps(c2) == [False], "the same residency, no longer kept")
    free_and_wait("clip_l.safetensors")


# -- a daemon started by ComfyUI, and no daemon at all ----------------------------

COMFY_DIR = os.environ.get("DISTORCH_REAL_COMFYUI_DIR", "")
COMFY_PYTHON = os.environ.get("DISTORCH_REAL_PYTHON", sys.executable)
COMFY_FLAGS = shlex.split(os.environ.get("DISTORCH_REAL_COMFY_FLAGS", ""))
DAEMON_BIN = os.environ.get("DISTORCH_REAL_DAEMON_BIN", "")


def _remember_pid(pid):
    """run_real.sh's cleanup kills these too (when their command line names $WORK)."""
    with open(os.path.join(WORK, "extra.pids"), "a") as f:
        f.write(f"{pid}\n")


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Instance:
    """Another ComfyUI on the same base directory (its own user and temp directories,
    an in-memory database) with its own distorch environment."""

    def __init__(self, name, port_number, env):
        check(bool(COMFY_DIR and COMFY_FLAGS and WORK), "run_real.sh passed how to start another ComfyUI "
              "(DISTORCH_REAL_COMFYUI_DIR/_COMFY_FLAGS; a ComfyUI with --base-directory)")
        self.dir = os.path.join(WORK, name)
        for d in ("user", "temp"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        self.log = os.path.join(self.dir, "comfyui.log")
        self.url = f"http://127.0.0.1:{port_number}"
        command = [COMFY_PYTHON, "main.py", *COMFY_FLAGS, "--listen", "127.0.0.1", "--port", str(port_number),
                   "--user-directory", os.path.join(self.dir, "user"),
                   "--temp-directory", os.path.join(self.dir, "temp"), "--database-url", "sqlite:///:memory:"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(command, cwd=COMFY_DIR, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env={**os.environ, **env})
        _remember_pid(self.proc.pid)
        print(f"  started ComfyUI '{name}' (pid {self.proc.pid}) on {self.url}; log {self.log}")

    def wait_ready(self, timeout=600):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise FlowFailed(f"ComfyUI exited with {self.proc.returncode} while starting:\n{self.tail()}")
            try:
                get("/system_stats", self.url)
                print(f"  ComfyUI answers after {time.time() - t0:.1f} s")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise FlowFailed(f"ComfyUI did not answer within {timeout} s:\n{self.tail()}")

    def lines(self, needle):
        with open(self.log, errors="replace") as f:
            return [l.rstrip() for l in f if needle in l]

    def tail(self, n=3000):
        with open(self.log, errors="replace") as f:
            return f.read()[-n:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return not open(f"/proc/{pid}/stat").read().split(") ")[-1].startswith("Z")
    except OSError:
        return False


def flow_autostart():
    """No daemon when ComfyUI starts (DISTORCH_SOCKET names a socket nothing serves,
    auto-start on, DISTORCH_DAEMON_BIN/_ARGS/_IDLE_EXIT_S set): ComfyUI starts one and
    logs where, a MultiGPU prompt loads through it, the daemon outlives ComfyUI; then the
    flow stops exactly that daemon (its pid from the log, checked against its command
    line) and removes its directory."""
    import re
    import shutil
    run_dir = os.path.join(WORK, "autostart", "run")
    sock_a = os.path.join(run_dir, "distorchd.sock")
    check(not os.path.exists(sock_a), f"no daemon at {sock_a} before ComfyUI starts")
    inst = Instance("autostart", int(port) + 1, {
        "DISTORCH_SOCKET": sock_a, "DISTORCH_AUTOSTART": "1", "DISTORCH_DAEMON_BIN": DAEMON_BIN,
        "DISTORCH_DAEMON_ARGS": f"--config {WORK}/distorchd.toml --devices sim:0=4GiB,sim:1=4GiB",
        "DISTORCH_IDLE_EXIT_S": "600"})
    daemon_pid = None
    try:
        inst.wait_ready()
        started = inst.lines("distorch: started distorchd")
        print("\n".join("  log: " + l.split("distorch: ", 1)[-1] for l in started))
        check(len(started) == 1, "ComfyUI logged that it started one distorchd")
        hit = re.search(r"started distorchd (\S+) \(pid (\d+)\) for this user at (\S+); (.*); log: (\S+)", started[0])
        check(hit is not None, "the line names the binary, pid, socket and log")
        daemon_pid = int(hit.group(2))
        check(hit.group(3) == sock_a and os.path.exists(hit.group(5)),
              f"at the configured socket, with its log next to it ({hit.group(5)})")
        check("exits after 600 s" in hit.group(4), "the idle exit it was given (600 s)")
        check(sock_a in _cmdline(daemon_pid) and "--idle-exit-s" in _cmdline(daemon_pid),
              f"pid {daemon_pid} is distorchd on that socket ({_cmdline(daemon_pid)[:200]})")
        _remember_pid(daemon_pid)
        check(bool(inst.lines(f"connected to distorchd")), "ComfyUI connected to it")
        start = os.path.getsize(inst.log)
        run_prompt({"1": unet_distorch2(virtual_vram_gb=0.05, donor_device="sim:1"),
                    "2": probe("mg_autostart", ["1", 0], digest=False)}, "UNETLoaderDisTorch2MultiGPU",
                   url=inst.url)
        found = residencies(UNET, socket_path=sock_a)
        for m in found:
            print("  daemon (auto-started):", describe(m))
        check(len(found) == 1, "the UNet resident in the auto-started daemon")
        check_virtual_vram(found[0], "sim:0", 0.05, ["sim:1"], "UNet")
        check_probe("mg_autostart", "model", "sim:0", {"sim:0", "sim:1"}, "UNet", res=found[0])
        inst.stop()
        check(_pid_alive(daemon_pid) and os.path.exists(sock_a), "the daemon outlives the ComfyUI that started it")
        subprocess.run(ctl + ["--socket", sock_a, "status"], capture_output=True, check=True, timeout=30)
    finally:
        inst.stop()
        if daemon_pid and sock_a in _cmdline(daemon_pid):
            os.kill(daemon_pid, 15)
            deadline = time.time() + 30
            while _pid_alive(daemon_pid) and time.time() < deadline:
                time.sleep(0.1)
            if _pid_alive(daemon_pid):
                os.kill(daemon_pid, 9)
            print(f"  stopped the auto-started distorchd (pid {daemon_pid})")
        shutil.rmtree(os.path.join(WORK, "autostart", "run"), ignore_errors=True)


def flow_no_drop():
    """Auto-start off and no daemon: a DisTorch2 node with an allocation fails the
    prompt with an error naming the socket (never a stock load that ignores the
    allocation); a device-only node loads the stock way; one warning in the log."""
    import shutil
    sock_n = os.path.join(WORK, "no_drop", "none", "distorchd.sock")
    inst = Instance("no_drop", int(port) + 2, {"DISTORCH_SOCKET": sock_n, "DISTORCH_AUTOSTART": "0"})
    try:
        inst.wait_ready()
        # Without a daemon the device combos are torch's devices: cpu here (--cpu).
        error = run_prompt({"1": unet_distorch2(compute_device="cpu", expert_mode_allocations="cuda:0,2gb;cpu,*"),
                            "2": probe("mg_no_drop", ["1", 0], digest=False)},
                           "UNETLoaderDisTorch2MultiGPU with an allocation", url=inst.url, expect_error=True)
        message = error.get("exception_message", "")
        check(sock_n in message and "asks for the allocation 'cuda:0,2gb;cpu,*'" in message
              and "not loaded the stock way" in message and "auto-start is off" in message,
              "the error names the allocation, the socket, and that auto-start is off")
        run_prompt({"1": mg("UNETLoaderMultiGPU", unet_name=UNET, weight_dtype="default", device="cpu"),
                    "2": probe("mg_no_drop_stock", ["1", 0])}, "UNETLoaderMultiGPU (no allocation)", url=inst.url)
        pl = probe_doc("mg_no_drop_stock")["placement"]["model"]
        check(not pl["broker"] and pl["load_device"] == "cpu", "loaded the stock way, on cpu")
        if os.path.exists(os.path.join(PROBE_OUT, "mg_stock_unet.json")):
            same_weights("mg_no_drop_stock", "mg_stock_unet", "the stock load equals stock UNETLoader's")
        warnings = inst.lines("distorchd is not running")
        print("\n".join("  log: " + l.split("distorch: ", 1)[-1][:400] for l in warnings))
        check(len(warnings) == 1 and sock_n in warnings[0], "one warning, naming the socket")
        check(not os.path.exists(sock_n), "no daemon was started")
    finally:
        inst.stop()
        shutil.rmtree(os.path.join(WORK, "no_drop", "none"), ignore_errors=True)


FLOW_FUNCS = {"keep": flow_keep, "clip_l": flow_clip_l, "free_kept": flow_free_kept,
              "reuse": flow_reuse, "kept_unused": flow_kept_unused, "gemma2": flow_gemma2, "triple": flow_triple,
              "checkpoint": flow_checkpoint, "checkpoint_save": flow_checkpoint_save,
              "lora": flow_lora, "save": flow_save, "save_lora": flow_save_lora, "gguf": flow_gguf, "gguf_q8": flow_gguf_q8,
              "free_all": flow_free_all,
              "mgpu_names": flow_mgpu_names, "mgpu_unet_vram": flow_mgpu_unet_vram,
              "mgpu_expert_bytes": flow_mgpu_expert_bytes, "mgpu_expert_logged": flow_mgpu_expert_logged,
              "mgpu_clip_device": flow_mgpu_clip_device, "mgpu_triple": flow_mgpu_triple,
              "mgpu_checkpoint": flow_mgpu_checkpoint, "mgpu_ckpt_advanced": flow_mgpu_ckpt_advanced,
              "mgpu_vae": flow_mgpu_vae, "mgpu_gguf": flow_mgpu_gguf, "mgpu_eject": flow_mgpu_eject,
              "autostart": flow_autostart, "no_drop": flow_no_drop}

results = []
for name in FLOWS:
    if name not in FLOW_FUNCS:
        print(f"drive.py: unknown flow {name!r} (known: {' '.join(FLOW_FUNCS)})")
        sys.exit(2)
    print(f"== flow {name}", flush=True)
    t0 = time.time()
    try:
        FLOW_FUNCS[name]()
        results.append((name, "PASS", ""))
    except FlowFailed as e:
        results.append((name, "FAIL", str(e)))
    except Exception as e:  # the driver's own trouble (ComfyUI gone, a file missing)
        results.append((name, "FAIL", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}"))
    status, why = results[-1][1], results[-1][2]
    print(f"FLOW {name}: {status} ({time.time() - t0:.1f} s){': ' + why if why else ''}", flush=True)

print("\n== summary")
for name, status, why in results:
    print(f"FLOW {name}: {status}{': ' + why.splitlines()[0][:300] if why else ''}")
sys.exit(0 if all(s == "PASS" for _, s, _ in results) else 1)
