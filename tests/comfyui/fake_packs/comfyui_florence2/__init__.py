"""kijai/ComfyUI-Florence2-shaped loaders (commit 00b63382, nodes.py): the same
inputs and outputs; loadmodel asks ComfyUI for the device and the offload
device, as the real one does, and builds a tiny module on the offload device."""
import torch

import comfy.model_management as mm

PRECISIONS = ["fp16", "bf16", "fp32"]
ATTENTION = ["flash_attention_2", "sdpa", "eager"]
CONVERT = ("BOOLEAN", {"default": False, "tooltip": "Some of the older model weights are not saved in "
                       ".safetensors format, which seem to cause longer loading times, this option "
                       "converts the .bin weights to .safetensors"})


def _load(model, precision):
    device, offload_device = mm.get_torch_device(), mm.unet_offload_device()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    module = torch.nn.Linear(4, 4).to(dtype).to(offload_device)
    return ({"model": module, "processor": model, "dtype": dtype, "device": device,
             "offload_device": offload_device},)


class Florence2ModelLoader:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {
            "model": (["Florence-2-base"], {"tooltip": "models are expected to be in Comfyui/models/LLM folder"}),
            "precision": (PRECISIONS,),
            "attention": (ATTENTION, {"default": "sdpa"})},
            "optional": {"lora": ("PEFTLORA",), "convert_to_safetensors": CONVERT}}

    RETURN_TYPES = ("FL2MODEL",)
    RETURN_NAMES = ("florence2_model",)
    FUNCTION = "loadmodel"
    CATEGORY = "Florence2"

    def loadmodel(self, model, precision, attention, lora=None, convert_to_safetensors=False):
        return _load(model, precision)


class DownloadAndLoadFlorence2Model:
    @classmethod
    def INPUT_TYPES(s):
        return {"required": {
            "model": (["microsoft/Florence-2-base", "microsoft/Florence-2-large"],
                      {"default": "microsoft/Florence-2-base"}),
            "precision": (PRECISIONS, {"default": "fp16"}),
            "attention": (ATTENTION, {"default": "sdpa"})},
            "optional": {"lora": ("PEFTLORA",), "convert_to_safetensors": CONVERT}}

    RETURN_TYPES = ("FL2MODEL",)
    RETURN_NAMES = ("florence2_model",)
    FUNCTION = "loadmodel"
    CATEGORY = "Florence2"

    def loadmodel(self, model, precision, attention, lora=None, convert_to_safetensors=False):
        return _load(model, precision)


NODE_CLASS_MAPPINGS = {"DownloadAndLoadFlorence2Model": DownloadAndLoadFlorence2Model,
                       "Florence2ModelLoader": Florence2ModelLoader}
