"""ComfyUI-MultiGPU workflows (docs/comfyui.md "Coming from ComfyUI-MultiGPU"): API-format
prompts shaped like what a ComfyUI-MultiGPU user saved, MultiGPU's node names and inputs,
sim:0/sim:1 for cuda:0/cuda:1. Each flow evicts a leftover residency of its files first
and ends with /free releasing what it loaded. Placement is checked in the daemon
(`distorchctl --json models`: allocation, compute_device and bytes per device of each
residency) and in the process (the probe's record of where each model's tensors are and
where ComfyUI runs it).

This module: each MultiGPU loader family placed where its inputs say.

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
"""

import os

from harness import (PROBE_OUT, FlowFailed, check, check_probe, check_virtual_vram, check_whole_on,
                     describe, free_and_wait, fresh, keeps, log_lines, log_size, mib, node_log, one, placed,
                     residencies, run_prompt, same_weights)
from workflows import CKPT, GGUF_F16, GGUF_Q8, TRIPLE, VAE_FILE, mg, probe, stock_probe


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
    print("\n".join("  log: " + line.split("distorch: ", 1)[-1][:400] for line in log_lines(start)
                    if "CheckpointLoaderAdvanced" in line or CKPT in line))
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
    check(any("GGUF tensors on broker memory" in line for line in log_lines(start)), "the GGUF tensors were rebound")
    check_probe("mg_gguf_q8", "model", "sim:0", {"sim:0", "cpu"}, "Q8_0 UNet")
    check_probe("mg_gguf_f16", "model", "sim:0", {"sim:0", "sim:1"}, "F16 UNet")
    same_weights("mg_gguf_q8", stock_probe("mg_gguf_q8_stock", mg("UnetLoaderGGUF", unet_name=GGUF_Q8)),
                 "UnetLoaderGGUFDisTorch2MultiGPU vs stock UnetLoaderGGUF (Q8_0)")
    free_and_wait(GGUF_Q8, GGUF_F16)
