"""Writes model files a real ComfyUI recognises, with ComfyUI's own module
classes built on the meta device (shapes only) and zero-filled data:
  diffusion_models/tiny_sd15_unet.safetensors  an SD1.x UNet (model_channels 320,
      context 768) with one level, so ComfyUI detects it as SD1.5 at ~1/50 size
and one text encoder, by the second argument:
  clip_l   text_encoders/clip_l.safetensors    CLIP-L (fp16, 246 MB); ComfyUI
           tokenizes it with transformers' CLIPTokenizer
  gemma2   text_encoders/gemma2_2b.safetensors Gemma 2 2B, Lumina 2's text
           encoder (fp16, 5.2 GB: ComfyUI fixes its size), with a small
           SentencePiece model trained here in the file's "spiece_model", as
           ComfyUI expects: ComfyUI tokenizes it with sentencepiece alone
Run with ComfyUI's interpreter from the ComfyUI directory:
  make_real_models.py OUT_DIR clip_l|gemma2"""

import io
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.getcwd())
from make_model import TensorSpec, write_safetensors, write_safetensors_specs  # noqa: E402

out, clip = sys.argv[1], sys.argv[2]
sys.argv = [sys.argv[0]] + ([] if torch.cuda.is_available() else ["--cpu"])  # comfy parses argv
os.makedirs(os.path.join(out, "diffusion_models"), exist_ok=True)
os.makedirs(os.path.join(out, "text_encoders"), exist_ok=True)

import comfy.options  # noqa: E402
comfy.options.enable_args_parsing()
import comfy.ops  # noqa: E402
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel  # noqa: E402
import comfy.sd1_clip  # noqa: E402


def arrays(module, dtype):
    return {k: np.zeros(tuple(v.shape), dtype=dtype) for k, v in module.state_dict().items()}


def write_zeros(path, shapes, extra):
    """A safetensors file of zero-filled F16 tensors (streamed, any size) plus
    `extra` arrays written as they are."""
    specs = [TensorSpec(k, "F16", tuple(s)) for k, s in shapes.items()]
    specs += [TensorSpec(k, "U8", a.shape) for k, a in extra.items()]
    zeros = bytes(16 << 20)

    def fill(spec, f):
        if spec.name in extra:
            f.write(extra[spec.name].tobytes())
            return
        left = spec.nbytes
        while left:
            f.write(zeros[:min(left, len(zeros))])
            left -= min(left, len(zeros))
    write_safetensors_specs(path, specs, fill)


def spiece_model():
    """A tiny SentencePiece model with Gemma's special ids (pad 0, eos 1, bos 2,
    unk 3), as the bytes ComfyUI reads from a text encoder's "spiece_model"."""
    import sentencepiece
    words = ("a photo of a cat sitting on a red chair next to a window with "
             "sunlight a painting of a dog in a green field under blue sky").split()
    sentences = [" ".join(words[i:] + words[:i]) for i in range(len(words))] * 20
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=96,
        hard_vocab_limit=False, pad_id=0, eos_id=1, bos_id=2, unk_id=3, minloglevel=2)
    return np.frombuffer(model.getvalue(), dtype=np.uint8).copy()


unet = UNetModel(image_size=32, in_channels=4, model_channels=320, out_channels=4,
                 num_res_blocks=[1], channel_mult=[1], transformer_depth=[1],
                 transformer_depth_output=[1, 1], transformer_depth_middle=1, context_dim=768,
                 num_head_channels=64, use_linear_in_transformer=False, use_spatial_transformer=True,
                 device="meta", operations=comfy.ops.disable_weight_init)
sd = {"model.diffusion_model." + k: v for k, v in arrays(unet, np.float32).items()}
write_safetensors(os.path.join(out, "diffusion_models", "tiny_sd15_unet.safetensors"), sd)

if clip == "clip_l":
    te = comfy.sd1_clip.SDClipModel(device="meta", dtype=torch.float16)
    write_safetensors(os.path.join(out, "text_encoders", "clip_l.safetensors"),
                      {k[len("transformer."):]: v for k, v in arrays(te, np.float16).items()
                       if k.startswith("transformer.")})
elif clip == "gemma2":
    import comfy.text_encoders.llama
    te = comfy.text_encoders.llama.Gemma2_2B({}, torch.float16, "meta", comfy.ops.disable_weight_init)
    write_zeros(os.path.join(out, "text_encoders", "gemma2_2b.safetensors"),
                {k: v.shape for k, v in te.state_dict().items()}, {"spiece_model": spiece_model()})
else:
    sys.exit(f"make_real_models.py: unknown text encoder {clip!r} (clip_l, gemma2)")
print("models written to", out)
