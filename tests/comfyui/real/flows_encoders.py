"""Flows on larger text encoders through distorch's nodes, placed over several devices.

  gemma2      Gemma 2 2B (lumina2) over sim:1 and cpu, used in place; then /free
  triple      DistorchTripleCLIPLoader: CLIP-L + CLIP-G + T5-XXL (fp8); then /free
"""

import json

from harness import check, free, log_lines, log_size, models, probe_doc, run_prompt, summary, wait_models
from workflows import TRIPLE, broker, clip_node, probe


def flow_gemma2():
    start = log_size()
    prompt = {"1": clip_node("gemma2_2b.safetensors", "lumina2", alloc="sim:1,2gb;cpu,*"),
              "2": probe("gemma2", clip=["1", 0], digest=False)}
    run_prompt(prompt, "distorch Gemma 2 2B over sim:1 and cpu")
    m = models()
    check("gemma2_2b.safetensors" in m, "Gemma 2 2B resident in distorchd")
    print("  daemon:", json.dumps(m["gemma2_2b.safetensors"]["raw"])[:600])
    lines = log_lines(start)
    print("\n".join("  log: " + line for line in lines[-4:]))
    check(any("of broker memory used in place" in line for line in lines), "the node logged its summary")
    sums = probe_doc("gemma2")["sums"]
    print(f"  probe: sum of every weight {sums} (the file is zeros; ComfyUI sets a few itself)")
    free()
    wait_models(lambda m: "gemma2_2b.safetensors" not in m, "/free ejected Gemma 2 2B")


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
    print("\n".join("  log: " + line for line in lines[-4:]))
    free()
    wait_models(lambda m: not any(name in m for name in TRIPLE), "/free ejected the three encoders")
