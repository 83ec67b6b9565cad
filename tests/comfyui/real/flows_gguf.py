"""Flows on ComfyUI-GGUF's files through distorch's GGUF loader.

  gguf        ComfyUI-GGUF through DistorchUnetLoaderGGUF, the F16 file: the weights
              equal UnetLoaderGGUF's
  gguf_q8     the same with the Q8_0 file
"""

from harness import check, log_lines, log_size, models, run_prompt, same_weights
from workflows import broker, probe


def gguf_flow(name, label):
    start = log_size()
    run_prompt({"1": {"class_type": "DistorchUnetLoaderGGUF", "inputs": broker(unet_name=name)},
                "2": probe(f"{label}_distorch", ["1", 0])}, f"DistorchUnetLoaderGGUF {name}")
    lines = log_lines(start)
    print("\n".join("  log: " + line for line in lines[-3:]))
    m = models()
    check(name in m, f"{name} resident in distorchd")
    check(any("GGUF tensors on broker memory" in line for line in lines), "the GGUF tensors were rebound")
    run_prompt({"1": {"class_type": "UnetLoaderGGUF", "inputs": {"unet_name": name}},
                "2": probe(f"{label}_stock", ["1", 0])}, f"stock UnetLoaderGGUF {name}")
    same_weights(f"{label}_distorch", f"{label}_stock", "distorch vs stock GGUF loader")


def flow_gguf():
    gguf_flow("tiny_sd15_f16.gguf", "gguf_f16")


def flow_gguf_q8():
    gguf_flow("tiny_sd15_q8_0.gguf", "gguf_q8")
