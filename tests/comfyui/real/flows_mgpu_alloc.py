"""ComfyUI-MultiGPU workflows (docs/comfyui.md "Coming from ComfyUI-MultiGPU"): API-format
prompts shaped like what a ComfyUI-MultiGPU user saved, MultiGPU's node names and inputs,
sim:0/sim:1 for cuda:0/cuda:1. Each flow evicts a leftover residency of its files first
and ends with /free releasing what it loaded. Placement is checked in the daemon
(`distorchctl --json models`: allocation, compute_device and bytes per device of each
residency) and in the process (the probe's record of where each model's tensors are and
where ComfyUI runs it).

This module: MultiGPU's names, and the DisTorch2 allocation inputs (virtual VRAM,
expert strings, eject_models).

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
  mgpu_eject        eject_models across /free: True released, False kept; the kept one
                    released after its node ran with True
"""

import json
import subprocess

from harness import (MiB, cfg, check, check_probe, check_virtual_vram, check_whole_on, free, free_and_wait,
                     free_kept_check, fresh, get, keeps, log_size, node_log, one, placed, residencies, run_prompt,
                     same_weights, wait_models)
from workflows import UNET, clip_distorch2, probe, stock_probe, unet_distorch2, unet_node


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
    check(not missing,
          f"{len(names) - len(missing)} of {len(names)} MultiGPU node names registered (missing {missing})")

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
    listed = subprocess.run(cfg.ctl + ["--socket", cfg.sock, "--json", "devices"],
                            capture_output=True, text=True, check=True).stdout
    broker_devices = [d["name"] for d in json.loads(listed)["devices"]]
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
    check("sim:0,40mib;" in m.get("allocation", "") and m.get("compute_device") == "sim:0",
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
