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

def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read().decode()
    except urllib.error.HTTPError as e:
        text = e.read().decode()
    return json.loads(text) if text else {}


def get(path):
    with urllib.request.urlopen(base + path, timeout=60) as r:
        return json.loads(r.read().decode())


def models():
    """name -> {id, keep (per lease), bytes, devices} of every residency."""
    out = subprocess.run(ctl + ["--socket", sock, "--json", "models"], capture_output=True,
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


def run_prompt(prompt, label, timeout=900):
    """Queues a prompt and waits for its /history entry; returns (entry, seconds)."""
    t0 = time.time()
    reply = post("/prompt", {"prompt": prompt})
    if "prompt_id" not in reply:
        raise FlowFailed(f"{label}: rejected: {json.dumps(reply)[:2000]}")
    pid = reply["prompt_id"]
    while time.time() - t0 < timeout:
        hist = get(f"/history/{pid}")
        if pid in hist and hist[pid].get("status", {}).get("completed") is not None:
            status = hist[pid]["status"]
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


FLOW_FUNCS = {"keep": flow_keep, "clip_l": flow_clip_l, "free_kept": flow_free_kept,
              "reuse": flow_reuse, "kept_unused": flow_kept_unused, "gemma2": flow_gemma2, "triple": flow_triple,
              "checkpoint": flow_checkpoint, "checkpoint_save": flow_checkpoint_save,
              "lora": flow_lora, "save": flow_save, "save_lora": flow_save_lora, "gguf": flow_gguf, "gguf_q8": flow_gguf_q8,
              "free_all": flow_free_all}

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
