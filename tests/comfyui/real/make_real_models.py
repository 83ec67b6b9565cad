"""Writes model files a real ComfyUI recognises, with ComfyUI's own module
classes built on the meta device (shapes only). Run with ComfyUI's interpreter
from the ComfyUI directory:

  make_real_models.py OUT_DIR ITEM...        (OUT_DIR/<folder>/<file>)

  unet       diffusion_models/tiny_sd15_unet.safetensors  an SD1.x UNet (model_channels
             320, context 768) with one level, so ComfyUI detects it as SD1.5 at ~1/50
             size; seeded random F32
  clip_l     text_encoders/clip_l.safetensors  CLIP-L, seeded random F16 (246 MB);
             ComfyUI tokenizes it with transformers' CLIPTokenizer
  gemma2     text_encoders/gemma2_2b.safetensors  Gemma 2 2B, Lumina 2's text encoder
             (F16 zeros, 4.87 GiB: ComfyUI fixes its size) with a small SentencePiece
             model trained here in the file's "spiece_model", as ComfyUI expects
             (tokenized by sentencepiece alone)
  clip_g     text_encoders/clip_g.safetensors  SDXL's CLIP-G, F16 zeros (1.4 GB)
  t5xxl      text_encoders/t5xxl_fp8_e4m3fn.safetensors  T5-XXL, every tensor
             float8_e4m3fn zeros (4.9 GB), so ComfyUI builds it in fp8 and uses the
             file's tensors in place (with clip_l and clip_g: SD3's triple encoder)
  checkpoint checkpoints/tiny_sd15.safetensors  the UNet and CLIP-L above (same values)
             plus SD1's VAE (F32 zeros), under SD1 checkpoint prefixes
  vae        vae/tiny_sd15_vae.safetensors  SD1's VAE alone (F32 zeros, 320 MiB), as the
             checkpoint's first_stage_model
  lora       loras/tiny_sd15_lora.safetensors  a rank-8 kohya LoRA on four UNet and
             four CLIP-L linear layers, seeded random F16
  gguf       diffusion_models/tiny_sd15_f16.gguf and tiny_sd15_q8_0.gguf: the UNet
             above as GGUF (arch sd1), written with the `gguf` package: all F16, and
             with every 2-D weight whose rows are whole blocks quantised to Q8_0

Zero-filled tensors are holes in a sparse file (no disk, no write time).
Each file already present is kept."""

import io
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.getcwd())
from make_model import TensorSpec, write_safetensors_specs  # noqa: E402

out, items = sys.argv[1], sys.argv[2:]
sys.argv = [sys.argv[0]] + ([] if torch.cuda.is_available() else ["--cpu"])  # comfy parses argv

import comfy.options  # noqa: E402
comfy.options.enable_args_parsing()
import comfy.ops  # noqa: E402
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel  # noqa: E402
import comfy.sd1_clip  # noqa: E402

NP = {"F32": np.float32, "F16": np.float16}


def path_of(folder, name):
    os.makedirs(os.path.join(out, folder), exist_ok=True)
    return os.path.join(out, folder, name)


def shapes(module, prefix="", strip=""):
    return {prefix + k[len(strip):]: tuple(v.shape) for k, v in module.state_dict().items()
            if k.startswith(strip)}


def random_arrays(shape_map, dtype, seed):
    """Seeded normal values (scale 0.05) as numpy arrays of the safetensors dtype."""
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(s, dtype=np.float32) * 0.05).astype(NP[dtype])
            for k, s in sorted(shape_map.items())}


def write(path, tensors=None, zeros=None, zero_dtype="F16", raw=None):
    """A safetensors file: `tensors` (numpy arrays, written as they are), `zeros`
    (name -> shape, zero_dtype, left as holes) and `raw` (name -> uint8 array)."""
    tensors, zeros, raw = tensors or {}, zeros or {}, raw or {}
    specs = [TensorSpec(k, {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}[a.dtype], a.shape)
             for k, a in tensors.items()]
    specs += [TensorSpec(k, zero_dtype, s) for k, s in zeros.items()]
    specs += [TensorSpec(k, "U8", a.shape) for k, a in raw.items()]

    def fill(spec, f):
        if spec.name in tensors:
            f.write(tensors[spec.name].tobytes())
        elif spec.name in raw:
            f.write(raw[spec.name].tobytes())
        else:
            f.seek(spec.nbytes, os.SEEK_CUR)
    size = write_safetensors_specs(path + ".tmp", specs, fill)
    os.truncate(path + ".tmp", size)  # a trailing hole
    os.replace(path + ".tmp", path)
    print(f"  {os.path.relpath(path, out)}: {size / 2**20:.0f} MiB, {len(specs)} tensors")


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


def unet_arrays():
    unet = UNetModel(image_size=32, in_channels=4, model_channels=320, out_channels=4,
                     num_res_blocks=[1], channel_mult=[1], transformer_depth=[1],
                     transformer_depth_output=[1, 1], transformer_depth_middle=1, context_dim=768,
                     num_head_channels=64, use_linear_in_transformer=False,
                     use_spatial_transformer=True, device="meta",
                     operations=comfy.ops.disable_weight_init)
    return random_arrays(shapes(unet, prefix="model.diffusion_model."), "F32", seed=1)


def clip_l_arrays():
    te = comfy.sd1_clip.SDClipModel(device="meta", dtype=torch.float16)
    return random_arrays(shapes(te, strip="transformer."), "F16", seed=2)


def vae_shapes():
    from comfy.ldm.models.autoencoder import AutoencoderKL
    ddconfig = {'double_z': True, 'z_channels': 4, 'resolution': 256, 'in_channels': 3, 'out_ch': 3,
                'ch': 128, 'ch_mult': [1, 2, 4, 4], 'num_res_blocks': 2, 'attn_resolutions': [],
                'dropout': 0.0}
    with torch.device("meta"):
        vae = AutoencoderKL(ddconfig=ddconfig, embed_dim=4)
    return shapes(vae)


def lora_arrays():
    """kohya names: lora_unet_<path>, lora_te_<path> (ComfyUI's comfy/lora.py maps them)."""
    targets = {
        "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q": (320, 320),
        "lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k": (320, 768),
        "lora_unet_middle_block_1_transformer_blocks_0_ff_net_2": (320, 1280),
        "lora_unet_output_blocks_0_1_transformer_blocks_0_attn1_to_out_0": (320, 320),
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj": (768, 768),
        "lora_te_text_model_encoder_layers_0_mlp_fc1": (3072, 768),
        "lora_te_text_model_encoder_layers_5_self_attn_v_proj": (768, 768),
        "lora_te_text_model_encoder_layers_11_mlp_fc2": (768, 3072),
    }
    rng = np.random.default_rng(3)
    arrays = {}
    for name, (o, i) in targets.items():
        arrays[name + ".lora_up.weight"] = (rng.standard_normal((o, 8)) * 0.1).astype(np.float16)
        arrays[name + ".lora_down.weight"] = (rng.standard_normal((8, i)) * 0.1).astype(np.float16)
        arrays[name + ".alpha"] = np.array(8.0, dtype=np.float16)
    return arrays


def write_gguf(path, arrays, quantize):
    import gguf
    w = gguf.GGUFWriter(path + ".tmp", arch="sd1")
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if quantize else gguf.LlamaFileType.MOSTLY_F16)
    quantised = 0
    for name, a in arrays.items():
        key = name[len("model.diffusion_model."):]
        a16 = a.astype(np.float16)
        if quantize and a.ndim == 2 and a.shape[-1] % 32 == 0:
            q = gguf.quants.quantize(a.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(key, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            quantised += 1
        else:
            w.add_tensor(key, a16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(path + ".tmp", path)
    print(f"  {os.path.relpath(path, out)}: {os.path.getsize(path) / 2**20:.0f} MiB, "
          f"{len(arrays)} tensors, {quantised} Q8_0")


def want(folder, name):
    path = path_of(folder, name)
    return None if os.path.exists(path) else path


print(f"make_real_models.py: {' '.join(items)} into {out}")
for item in items:
    if item == "unet" and (p := want("diffusion_models", "tiny_sd15_unet.safetensors")):
        write(p, unet_arrays())
    elif item == "clip_l" and (p := want("text_encoders", "clip_l.safetensors")):
        write(p, clip_l_arrays())
    elif item == "gemma2" and (p := want("text_encoders", "gemma2_2b.safetensors")):
        import comfy.text_encoders.llama
        te = comfy.text_encoders.llama.Gemma2_2B({}, torch.float16, "meta", comfy.ops.disable_weight_init)
        write(p, zeros=shapes(te), raw={"spiece_model": spiece_model()})
    elif item == "clip_g" and (p := want("text_encoders", "clip_g.safetensors")):
        import comfy.sdxl_clip
        te = comfy.sdxl_clip.SDXLClipG(device="meta", dtype=torch.float16)
        write(p, zeros=shapes(te, strip="transformer."))
    elif item == "t5xxl" and (p := want("text_encoders", "t5xxl_fp8_e4m3fn.safetensors")):
        import comfy.text_encoders.sd3_clip
        te = comfy.text_encoders.sd3_clip.T5XXLModel(device="meta", dtype=torch.float8_e4m3fn)
        write(p, zeros=shapes(te, strip="transformer."), zero_dtype="F8_E4M3")
    elif item == "checkpoint" and (p := want("checkpoints", "tiny_sd15.safetensors")):
        tensors = dict(unet_arrays())
        # as in a real SD1.5 checkpoint: no text_projection (ComfyUI neither loads nor saves it)
        tensors.update({"cond_stage_model.transformer." + k: v for k, v in clip_l_arrays().items()
                        if not k.startswith("text_projection")})
        vae = {"first_stage_model." + k: s for k, s in vae_shapes().items()}
        write(p, tensors, zeros=vae, zero_dtype="F32")
    elif item == "vae" and (p := want("vae", "tiny_sd15_vae.safetensors")):
        write(p, zeros=vae_shapes(), zero_dtype="F32")
    elif item == "lora" and (p := want("loras", "tiny_sd15_lora.safetensors")):
        write(p, lora_arrays())
    elif item == "gguf":
        arrays = None
        for name, quantize in (("tiny_sd15_f16.gguf", False), ("tiny_sd15_q8_0.gguf", True)):
            if p := want("diffusion_models", name):
                arrays = arrays or unet_arrays()
                write_gguf(p, arrays, quantize)
    elif item not in ("unet", "clip_l", "gemma2", "clip_g", "t5xxl", "checkpoint", "vae", "lora", "gguf"):
        sys.exit(f"make_real_models.py: unknown item {item!r}")
print("models written to", out)
