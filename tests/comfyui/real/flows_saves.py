"""Flows on checkpoints, LoRA and ComfyUI's save nodes: a distorch load behaves as the
stock loaders' does, and what ComfyUI saves from it is what the files hold.

  checkpoint  DistorchCheckpointLoaderSimple: weights and outputs equal a stock load's
  checkpoint_save  its CheckpointSave equals the source file
  lora        LoraLoader on distorch-loaded UNet + CLIP: a text encoding and one
              sampler step equal the stock loaders' (within float32 rounding) at
              strength 1.0, then after a strength change; then without the LoRA the
              outputs and the shared base equal stock's exactly
  save        ModelSave and CLIPSave of distorch-loaded models equal the source files
  save_lora   ModelSave and CLIPSave after a LoraLoader: equal to the same saves of
              stock-loaded models (the patched weights are written)
"""

import glob
import os

from harness import (MODELS, OUTPUT, check, log_lines, log_size, models, probe_doc, run_prompt, same_outputs,
                     same_weights, state)
from workflows import CKPT, UNET, broker, clip_node, lora_prompt, outputs, probe, unet_clip_prompt, unet_node


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


def flow_lora():
    for sm, sc in ((1.0, 1.0), (0.5, -0.25)):
        tag = f"{sm:g}_{sc:g}"
        start = log_size()
        run_prompt(lora_prompt(f"lora_distorch_{tag}", False, sm, sc), f"distorch loaders + LoRA {tag}")
        print("\n".join("  log: " + line for line in log_lines(start)[-3:]))
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
