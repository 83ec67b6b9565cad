"""Flows on a UNet and one text encoder: keep_loaded across /free and across a prompt
that does not use the kept model, reuse of a kept residency, and a distorch load
equal to ComfyUI's stock loaders'.

  keep        UNet (keep_loaded) + text encoder ($CLIP), /free ejects exactly the
              encoder, a second prompt reuses the kept UNet (the torch-1.13 run)
  clip_l      UNet + CLIP-L through distorch nodes; weights, a text encoding and one
              sampler step equal a stock load's
  free_kept   /free with a kept model: CLIP-L ejected, the kept UNet stays
  reuse       the clip_l prompt again: the UNet's residency reused, CLIP-L reloaded
  kept_unused a prompt without the kept UNet: it stays resident (keep_loaded)
  free_all    /free with no kept model: every residency of this instance released
"""

import os
import time

from harness import (CLIP_ALLOC, CLIP_FILE, CLIP_TYPE, PROBE_OUT, check, free, log_lines, log_size, models,
                     run_prompt, same_outputs, same_weights, state, summary, wait_models)
from workflows import UNET, clip_node, outputs, probe, unet_clip_prompt


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
    print("\n".join("  log: " + line for line in log_lines(start)[-6:]))
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
    lines = [line for line in log_lines(start) if "released" in line]
    print("\n".join("  log: " + line for line in lines))
    check(models().get(UNET, {}).get("id") == unet_id,
          "the kept UNet stays resident when a prompt does not use it")


def flow_free_all():
    # The UNet again with keep_loaded=false: no model of this instance is kept now.
    run_prompt(unet_clip_prompt("free_all", keep=False), "UNet + CLIP-L, nothing kept")
    m = models()
    check(UNET in m and m[UNET]["keep"] == [False], "the UNet's flag is now keep_loaded=false")
    free()
    left = wait_models(lambda m: not m, "/free released every residency")
    check(not left, "no residency left")
