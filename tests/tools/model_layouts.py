"""State-dict key layouts of the model families distorch serves.

Each layout function takes a hidden width and a depth and returns
``[(name, shape), ...]`` in state-dict order (the order PyTorch registers the
parameters, which is the order a loader streams them). Names follow the real
checkpoints (FLUX transformer, SDXL UNet, T5 encoder, the SD/FLUX VAE) so
that block grouping and placement see realistic keys; shapes scale with the
width so a model can be made at any size.
"""

from __future__ import annotations

from typing import Callable, List, Tuple

Shape = Tuple[int, ...]
Layout = List[Tuple[str, Shape]]


def _linear(out: Layout, name: str, n_out: int, n_in: int, bias: bool = True) -> None:
    out.append((f"{name}.weight", (n_out, n_in)))
    if bias:
        out.append((f"{name}.bias", (n_out,)))


def _norm(out: Layout, name: str, n: int) -> None:
    out.append((f"{name}.weight", (n,)))
    out.append((f"{name}.bias", (n,)))


def _conv(out: Layout, name: str, n_out: int, n_in: int, k: int = 3) -> None:
    out.append((f"{name}.weight", (n_out, n_in, k, k)))
    out.append((f"{name}.bias", (n_out,)))


def flux(width: int, depth: int) -> Layout:
    """FLUX.1 transformer: width 3072, 19 double + 38 single blocks at full size."""
    h, head_dim = width, min(128, width)
    double, single = max(1, depth * 19 // 57), max(1, depth - depth * 19 // 57)
    out: Layout = []
    _linear(out, "img_in", h, 64)
    for emb, n_in in (("time_in", 256), ("vector_in", 768), ("guidance_in", 256)):
        _linear(out, f"{emb}.in_layer", h, n_in)
        _linear(out, f"{emb}.out_layer", h, h)
    _linear(out, "txt_in", h, 4096)
    for n in range(double):
        for side in ("img", "txt"):
            p = f"double_blocks.{n}.{side}"
            _linear(out, f"{p}_mod.lin", 6 * h, h)
            _linear(out, f"{p}_attn.qkv", 3 * h, h)
            out.append((f"{p}_attn.norm.query_norm.scale", (head_dim,)))
            out.append((f"{p}_attn.norm.key_norm.scale", (head_dim,)))
            _linear(out, f"{p}_attn.proj", h, h)
            _linear(out, f"{p}_mlp.0", 4 * h, h)
            _linear(out, f"{p}_mlp.2", h, 4 * h)
    for n in range(single):
        p = f"single_blocks.{n}"
        _linear(out, f"{p}.linear1", 3 * h + 4 * h, h)
        _linear(out, f"{p}.linear2", h, h + 4 * h)
        out.append((f"{p}.norm.query_norm.scale", (head_dim,)))
        out.append((f"{p}.norm.key_norm.scale", (head_dim,)))
        _linear(out, f"{p}.modulation.lin", 3 * h, h)
    _linear(out, "final_layer.linear", 64, h)
    _linear(out, "final_layer.adaLN_modulation.1", 2 * h, h)
    return out


def _resblock(out: Layout, p: str, c_in: int, c_out: int, emb: int) -> None:
    _norm(out, f"{p}.in_layers.0", c_in)
    _conv(out, f"{p}.in_layers.2", c_out, c_in)
    _linear(out, f"{p}.emb_layers.1", c_out, emb)
    _norm(out, f"{p}.out_layers.0", c_out)
    _conv(out, f"{p}.out_layers.3", c_out, c_out)
    if c_in != c_out:
        _conv(out, f"{p}.skip_connection", c_out, c_in, k=1)


def _transformer(out: Layout, p: str, ch: int, depth: int, context: int) -> None:
    _norm(out, f"{p}.norm", ch)
    _linear(out, f"{p}.proj_in", ch, ch)
    for k in range(depth):
        b = f"{p}.transformer_blocks.{k}"
        for attn, kv_in in (("attn1", ch), ("attn2", context)):
            _linear(out, f"{b}.{attn}.to_q", ch, ch, bias=False)
            _linear(out, f"{b}.{attn}.to_k", ch, kv_in, bias=False)
            _linear(out, f"{b}.{attn}.to_v", ch, kv_in, bias=False)
            _linear(out, f"{b}.{attn}.to_out.0", ch, ch)
            if attn == "attn1":
                _linear(out, f"{b}.ff.net.0.proj", 8 * ch, ch)
                _linear(out, f"{b}.ff.net.2", ch, 4 * ch)
        for norm in ("norm1", "norm2", "norm3"):
            _norm(out, f"{b}.{norm}", ch)
    _linear(out, f"{p}.proj_out", ch, ch)


def sdxl(width: int, depth: int) -> Layout:
    """SDXL UNet: model channels 320, transformer depths (0, 2, 10) at full size."""
    c, emb, context = width, 4 * width, 2048
    mult = (1, 2, 4)
    tdepth = (0, max(1, depth // 5), max(1, depth))
    out: Layout = []
    _linear(out, "time_embed.0", emb, c)
    _linear(out, "time_embed.2", emb, emb)
    _linear(out, "label_emb.0.0", emb, 2816)
    _linear(out, "label_emb.0.2", emb, emb)
    _conv(out, "input_blocks.0.0", c, 4)
    skips, ch, n = [c], c, 1
    for level, m in enumerate(mult):
        for _ in range(2):
            _resblock(out, f"input_blocks.{n}.0", ch, m * c, emb)
            ch = m * c
            if tdepth[level]:
                _transformer(out, f"input_blocks.{n}.1", ch, tdepth[level], context)
            skips.append(ch)
            n += 1
        if level != len(mult) - 1:
            _conv(out, f"input_blocks.{n}.0.op", ch, ch)
            skips.append(ch)
            n += 1
    _resblock(out, "middle_block.0", ch, ch, emb)
    _transformer(out, "middle_block.1", ch, tdepth[-1], context)
    _resblock(out, "middle_block.2", ch, ch, emb)
    n = 0
    for level, m in reversed(list(enumerate(mult))):
        for i in range(3):
            _resblock(out, f"output_blocks.{n}.0", ch + skips.pop(), m * c, emb)
            ch = m * c
            sub = 1
            if tdepth[level]:
                _transformer(out, f"output_blocks.{n}.1", ch, tdepth[level], context)
                sub = 2
            if level and i == 2:
                _conv(out, f"output_blocks.{n}.{sub}.conv", ch, ch)
            n += 1
    _norm(out, "out.0", c)
    _conv(out, "out.2", 4, c)
    return out


def t5(width: int, depth: int) -> Layout:
    """T5-XXL encoder: d_model 4096, d_ff 10240, 24 blocks at full size."""
    d, d_ff, heads = width, width * 5 // 2, max(1, width // 64)
    inner = heads * 64 if width >= 64 else width
    out: Layout = [("shared.weight", (min(32128, 64 * d), d))]
    for n in range(depth):
        p = f"encoder.block.{n}.layer"
        for proj in ("q", "k", "v"):
            out.append((f"{p}.0.SelfAttention.{proj}.weight", (inner, d)))
        out.append((f"{p}.0.SelfAttention.o.weight", (d, inner)))
        if n == 0:
            out.append((f"{p}.0.SelfAttention.relative_attention_bias.weight", (32, heads)))
        out.append((f"{p}.0.layer_norm.weight", (d,)))
        out.append((f"{p}.1.DenseReluDense.wi_0.weight", (d_ff, d)))
        out.append((f"{p}.1.DenseReluDense.wi_1.weight", (d_ff, d)))
        out.append((f"{p}.1.DenseReluDense.wo.weight", (d, d_ff)))
        out.append((f"{p}.1.layer_norm.weight", (d,)))
    out.append(("encoder.final_layer_norm.weight", (d,)))
    return out


def _vae_res(out: Layout, p: str, c_in: int, c_out: int) -> None:
    _norm(out, f"{p}.norm1", c_in)
    _conv(out, f"{p}.conv1", c_out, c_in)
    _norm(out, f"{p}.norm2", c_out)
    _conv(out, f"{p}.conv2", c_out, c_out)
    if c_in != c_out:
        _conv(out, f"{p}.nin_shortcut", c_out, c_in, k=1)


def _vae_mid(out: Layout, p: str, ch: int) -> None:
    _vae_res(out, f"{p}.block_1", ch, ch)
    _norm(out, f"{p}.attn_1.norm", ch)
    for proj in ("q", "k", "v", "proj_out"):
        _conv(out, f"{p}.attn_1.{proj}", ch, ch, k=1)
    _vae_res(out, f"{p}.block_2", ch, ch)


def vae(width: int, depth: int) -> Layout:
    """SD/FLUX autoencoder: ch 128, ch_mult (1, 2, 4, 4), z 16 at full size."""
    ch, mult, z = width, (1, 2, 4, 4), 16
    res_blocks = max(1, depth)
    out: Layout = []
    _conv(out, "encoder.conv_in", ch, 3)
    c = ch
    for n, m in enumerate(mult):
        for b in range(res_blocks):
            _vae_res(out, f"encoder.down.{n}.block.{b}", c, m * ch)
            c = m * ch
        if n != len(mult) - 1:
            _conv(out, f"encoder.down.{n}.downsample.conv", c, c)
    _vae_mid(out, "encoder.mid", c)
    _norm(out, "encoder.norm_out", c)
    _conv(out, "encoder.conv_out", 2 * z, c)
    _conv(out, "decoder.conv_in", c, z)
    _vae_mid(out, "decoder.mid", c)
    # The decoder's up list is indexed low resolution last, as in the
    # original code (it inserts at the front while building).
    ups: Layout = []
    for n in reversed(range(len(mult))):
        level: Layout = []
        for b in range(res_blocks + 1):
            _vae_res(level, f"decoder.up.{n}.block.{b}", c, mult[n] * ch)
            c = mult[n] * ch
        if n != 0:
            _conv(level, f"decoder.up.{n}.upsample.conv", c, c)
        ups = level + ups
    out += ups
    _norm(out, "decoder.norm_out", ch)
    _conv(out, "decoder.conv_out", 3, ch)
    return out


def tiny(width: int, depth: int) -> Layout:
    """A small generic transformer for quick tests."""
    out: Layout = [("embed.weight", (256, width))]
    for n in range(depth):
        p = f"blocks.{n}"
        _norm(out, f"{p}.norm1", width)
        _linear(out, f"{p}.attn.qkv", 3 * width, width)
        _linear(out, f"{p}.attn.proj", width, width)
        _norm(out, f"{p}.norm2", width)
        _linear(out, f"{p}.mlp.fc1", 4 * width, width)
        _linear(out, f"{p}.mlp.fc2", width, 4 * width)
    _norm(out, "norm", width)
    _linear(out, "head", 256, width, bias=False)
    return out


# name -> (layout, full width, full depth, width step, GGUF architecture name)
ARCHS: dict[str, Tuple[Callable[[int, int], Layout], int, int, int, str]] = {
    "flux": (flux, 3072, 57, 64, "flux"),
    "sdxl": (sdxl, 320, 10, 32, "sdxl"),
    "t5": (t5, 4096, 24, 64, "t5encoder"),
    "vae": (vae, 128, 2, 32, "vae"),
    "tiny": (tiny, 256, 4, 32, "tiny"),
}
