"""Test-only ComfyUI output node for run_real.sh: makes ComfyUI's model
management load a MODEL and a CLIP (load_models_gpu) and reads every weight
(a checksum), which is what a sampler needs from them. Installed only by
run_real.sh."""

import logging

import torch

import comfy.model_management


class DistorchProbe:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "clip": ("CLIP",)}}

    RETURN_TYPES = ()
    FUNCTION = "probe"
    OUTPUT_NODE = True
    CATEGORY = "distorch/test"

    def probe(self, model, clip):
        comfy.model_management.load_models_gpu([model, clip.patcher])
        sums = []
        for patcher in (model, clip.patcher):
            total = 0.0
            for p in patcher.model.parameters():
                if p.device.type == "meta":
                    raise RuntimeError("probe: a weight was dropped (meta)")
                total += float(p.detach().float().sum())
            sums.append(total)
        logging.info("DistorchProbe: checksums %s", sums)
        return {"ui": {"text": [repr(sums)]}}


NODE_CLASS_MAPPINGS = {"DistorchProbe": DistorchProbe}
