"""Selftok: discrete visual tokens ordered by a diffusion decoder.

Paper: "Selftok: Discrete Visual Tokens of Autoregression, by Diffusion, and for Reasoning"
(Selftok Team), arXiv 2505.07538. Upstream: github.com/selftok-team/SelftokTokenizer (MIT);
weights: hub repo selftok-team/SelftokTokenizer. Written anew from the paper and a reading of the
upstream code; nothing is copied.

Pipeline (released 512-token model):
  image [B, 3, 256, 256] in [0, 1]
    -> SD3 VAE latent, normalised ((z - 0.0609) * 1.5305): [B, 16, 32, 32]
    -> dual-stream Q-Former encoder: 256 latent patches + 512 learned queries -> [B, 512, 512]
    -> cosine VQ (project 512 -> 16, l2-normalise, nearest of 32,768 unit codes) -> ids [B, 512]
    -> LayerNorm(codes) = the decoder's conditioning [B, 512, 16]
    -> (a) MMDiT rectified-flow decoder, 50 Euler steps: at noise level t only the tokens
           0..k(t) are visible to the image (k = the token schedule, `last_visible_token`), or
       (b) the one-step renderer (an MMDiT fed learned mask tokens instead of noise)
    -> latent -> SD3 VAE decode -> image.

Token order: token 0 is seen at every noise level; high-index tokens only at high noise. Any
prefix decodes (the missing tokens are simply never visible). An AR prior generates them reversed
(upstream README): `zoo.lm.to_lm(tokens, K, order="reversed")`.

Deviations from the upstream code (all numerically neutral; see models/selftok/NOTES.md):
- the sampler computes the visibility mask from the schedule instead of re-running the encoder on
  the noise at every step, and gives the decoder only the visible prefix of the context instead of
  a masked full context (keys that are masked out contribute exact zeros either way);
- the per-token-position adaLN modulations of the context stream do not depend on the noise level,
  so they are computed once per decode call instead of once per step;
- no `.cuda()`: every tensor is created on the input's device.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from zoo.api import (FlowOutput, Tokenizer, TokenizerOutput, Tokens, check_finite, check_target_psnr, fewest_tokens,
                     inference, prepare_images)
from zoo.blocks.dit import Mlp, TimestepEmbedder, modulate, sincos_1d, sincos_2d
from zoo.quantizers.vq import VectorQuantizer
from zoo.registry import FamilySpec, PretrainedCfg, Variant
from zoo.samplers import euler, linspace_timesteps

PAPER = "arXiv:2505.07538"
UPSTREAM = "https://github.com/selftok-team/SelftokTokenizer"
HUB_ID = "selftok-team/SelftokTokenizer"
LICENSE = "MIT"
SD3_VAE_REPO = "stabilityai/stable-diffusion-3-medium-diffusers"

# Per-token positions fed to the sinusoidal embedders: token k sits at "time" 1000 + 8 k, beyond the
# diffusion time range [0, 1000) (upstream DiTi.get_position).
_POS_OFFSET, _POS_STRIDE = 1000, 8


def token_positions(n: int, device=None) -> Tensor:
    return _POS_OFFSET + _POS_STRIDE * torch.arange(n, device=device)


@dataclass(frozen=True)
class SelftokConfig:
    """Defaults = the released 512-token tokenizer (configs/res256/256-eval.yml)."""

    image_size: int = 256  # pixels (square); the latent is image_size // 8
    latent_channels: int = 16  # SD3 VAE latent channels
    num_tokens: int = 512  # K: tokens per image
    stages: tuple[int, ...] = (200, 400, 600, 800, 1000)  # diffusion-time boundaries (x1000) of the schedule
    k_per_stage: tuple[int, ...] = (192, 184, 72, 48, 16)  # tokens unlocked over each stage (sum = K)
    # encoder (dual-stream Q-Former, upstream "Enc-Qformer-Uni-XL/2")
    encoder_patch_size: int = 2
    encoder_width: int = 64  # latent-patch stream width
    encoder_heads: int = 4
    encoder_depth: int = 16
    query_width: int = 512  # query stream width
    query_heads: int = 8
    encoder_pos_max: int = 64  # side of the stored 2D sin-cos table (2 x the latent side upstream)
    mlp_ratio: float = 4.0
    # quantizer (cosine-similarity VQ)
    codebook_size: int = 32768
    code_dim: int = 16  # codebook vector width (l2-normalised)
    token_dim: int = 16  # width of the decoder's conditioning ("encoder_hidden_size" upstream)
    post_norm: bool = True  # LayerNorm on the looked-up codes before the decoder
    codebook_ema_decay: float = 0.99  # training only: EMA codebook update
    commitment_weight: float = 1.0  # training only
    dead_code_threshold: float = 0.0  # training only: restart codes whose EMA count per batch falls below this (0 = off)
    # decoder
    decoder: str = "flow"  # "flow": MMDiT + rectified-flow sampler; "renderer": one-step MMDiT renderer
    decoder_depth: int = 24  # joint blocks; width = 64 * depth, heads = depth (SD3 MMDiT rule)
    decoder_patch_size: int = 2
    decoder_pos_max: int = 192  # side of the stored 2D position table (flow decoder)
    context_see_xt: bool = True  # token queries also attend to image keys (flow: yes, renderer: no)
    renderer_shared_mask_token: bool = True  # renderer: one mask token repeated (True) or one per patch
    sampling_steps: int = 50  # default Euler steps of the flow sampler
    # VAE between pixels and latents
    vae: str = "sd3"  # "sd3": diffusers AutoencoderKL from vae_repo; "dct": fixed 8x8 block-DCT (tests, tiny models)
    vae_repo: str = SD3_VAE_REPO  # hub repo holding the VAE in subfolder "vae" (loaded lazily, not in our weights)
    vae_dtype: str = "bfloat16"  # the official pipeline runs the VAE in bf16
    latent_shift: float = 0.0609  # latent = (z - shift) * scale (SD3LatentFormat)
    latent_scale: float = 1.5305

    def __post_init__(self):
        if self.decoder not in ("flow", "renderer"):
            raise ValueError(f"SelftokConfig.decoder must be 'flow' or 'renderer'; got {self.decoder!r}.")
        if self.vae not in ("sd3", "dct"):
            raise ValueError(f"SelftokConfig.vae must be 'sd3' or 'dct'; got {self.vae!r}.")
        if len(self.stages) != len(self.k_per_stage) or not self.stages:
            raise ValueError(f"stages {self.stages} and k_per_stage {self.k_per_stage} must be non-empty and of equal length.")
        if list(self.stages) != sorted(set(self.stages)) or self.stages[0] <= 0:
            raise ValueError(f"stages must be strictly increasing positive times; got {self.stages}.")
        if sum(self.k_per_stage) != self.num_tokens:
            raise ValueError(f"k_per_stage {self.k_per_stage} sums to {sum(self.k_per_stage)}, not num_tokens={self.num_tokens}.")
        if self.image_size % (8 * self.encoder_patch_size) or self.image_size % (8 * self.decoder_patch_size):
            raise ValueError(f"image_size {self.image_size} must be divisible by 8 x the patch sizes.")

    @property
    def latent_size(self) -> int:
        return self.image_size // 8

    @property
    def decoder_width(self) -> int:
        return 64 * self.decoder_depth


# ----------------------------------------------------------------------------------------------
# the token schedule
# ----------------------------------------------------------------------------------------------
def last_visible_token(time_index: Tensor, cfg: SelftokConfig) -> Tensor:
    """Index of the last token the decoder sees at integer diffusion time T in [0, 1000].

    On stage i (T in [s_i, s_{i+1})): k = (k_1 + ... + k_{i-1}) + floor((T - s_i) * k_i / (s_{i+1} - s_i)),
    clamped to [0, K - 1]; tokens 0..k are visible. The slope is applied in float32 and truncated,
    as upstream (DiTi_cont), so that the mask matches at stage borders. time_index: int [N] -> [N].
    """
    t = time_index.long()
    idx = torch.zeros_like(t)
    low, base = 0, 0
    for stop, k in zip(cfg.stages, cfg.k_per_stage):
        slope = float(k) / (stop - low)
        xp = t - low
        idx = torch.where(xp >= 0, (slope * xp).long() + base, idx)  # float32 product, truncated
        low, base = stop, base + k
    return idx.clamp(0, cfg.num_tokens - 1)


def time_index(t: Tensor) -> Tensor:
    """Rectified-flow time t in [0, 1] (1 = pure noise) -> the integer time floor(1000 t) of the schedule."""
    return (t.float() * 1000.0).long()


# ----------------------------------------------------------------------------------------------
# encoder: dual-stream Q-Former
# ----------------------------------------------------------------------------------------------
def _heads(x: Tensor, heads: int) -> Tensor:
    return rearrange(x, "b n (h d) -> b h n d", h=heads)


class DualAttention(nn.Module):
    """Latent patches attend among themselves; queries attend to [latent patches, queries]."""

    def __init__(self, dim: int, heads: int, query_dim: int, query_heads: int):
        super().__init__()
        self.heads, self.query_heads = heads, query_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.to_query_kv = nn.Linear(dim, 2 * query_dim)  # latent patches -> keys/values of the query stream
        self.query_linear = nn.Linear(query_dim, 3 * query_dim)
        self.proj = nn.Linear(dim, dim)
        self.query_proj = nn.Linear(query_dim, query_dim)

    def forward(self, x: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:  # x: [B, N, D], q: [B, K, Dq]
        xq, xk, xv = (_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        x_out = F.scaled_dot_product_attention(xq, xk, xv)  # [B, H, N, d]
        pk, pv = (_heads(t, self.query_heads) for t in self.to_query_kv(x).chunk(2, dim=-1))
        qq, qk, qv = (_heads(t, self.query_heads) for t in self.query_linear(q).chunk(3, dim=-1))
        q_out = F.scaled_dot_product_attention(qq, torch.cat([pk, qk], 2), torch.cat([pv, qv], 2))  # [B, Hq, K, dq]
        x_out = self.proj(rearrange(x_out, "b h n d -> b n (h d)"))
        q_out = self.query_proj(rearrange(q_out, "b h n d -> b n (h d)"))
        return x_out, q_out


class DualBlock(nn.Module):
    """Pre-LN block over both streams; the query stream is adaLN-modulated per query position."""

    def __init__(self, dim: int, heads: int, query_dim: int, query_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.q_norm1 = nn.LayerNorm(query_dim, elementwise_affine=False, eps=1e-6)
        self.q_norm2 = nn.LayerNorm(query_dim, elementwise_affine=False, eps=1e-6)
        self.attn = DualAttention(dim, heads, query_dim, query_heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.q_mlp = Mlp(query_dim, int(query_dim * mlp_ratio))
        self.t_embedder = TimestepEmbedder(query_dim)  # embeds the query positions
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(query_dim, 6 * query_dim))

    def forward(self, x: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:  # x: [B, N, D], q: [B, K, Dq]
        pos = self.t_embedder(token_positions(q.shape[1], q.device))  # [K, Dq]
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(pos)[None].chunk(6, dim=-1)  # [1, K, Dq]
        x_attn, q_attn = self.attn(self.norm1(x), modulate(self.q_norm1(q), shift1, scale1))
        x = x + x_attn
        x = x + self.mlp(self.norm2(x))
        q = q + gate1 * q_attn
        q = q + gate2 * self.q_mlp(modulate(self.q_norm2(q), shift2, scale2))
        return x, q


class SelftokEncoder(nn.Module):
    """Normalised latent [B, C, h, w] -> query features [B, K, Dq]."""

    def __init__(self, cfg: SelftokConfig):
        super().__init__()
        self.patch_size, self.pos_max = cfg.encoder_patch_size, cfg.encoder_pos_max
        self.patch_embed = nn.Conv2d(cfg.latent_channels, cfg.encoder_width, cfg.encoder_patch_size, cfg.encoder_patch_size)
        self.register_buffer("pos_embed", sincos_2d(cfg.encoder_width, cfg.encoder_pos_max)[None])  # [1, M*M, D]
        self.query_tokens = nn.Parameter(torch.randn(1, cfg.num_tokens, cfg.query_width) * 0.02)
        self.blocks = nn.ModuleList(
            DualBlock(cfg.encoder_width, cfg.encoder_heads, cfg.query_width, cfg.query_heads, cfg.mlp_ratio)
            for _ in range(cfg.encoder_depth)
        )

    def forward(self, latents: Tensor) -> Tensor:
        x = self.patch_embed(latents)  # [B, D, h/p, w/p]
        gh, gw = x.shape[-2:]
        x = rearrange(x, "b d h w -> b (h w) d")  # [B, N, D]
        x = x + _center_crop_table(self.pos_embed, self.pos_max, gh, gw)
        q = self.query_tokens.expand(x.shape[0], -1, -1)  # [B, K, Dq]
        for block in self.blocks:
            x, q = block(x, q)
        return q


def _center_crop_table(table: Tensor, side: int, h: int, w: int) -> Tensor:
    """[1, side*side, D] position table -> its centred h x w window [1, h*w, D]."""
    if h > side or w > side:
        raise ValueError(f"Selftok supports latent grids up to {side}x{side} patches; got {h}x{w}.")
    top, left = (side - h) // 2, (side - w) // 2
    grid = rearrange(table, "1 (h w) d -> 1 h w d", h=side)[:, top : top + h, left : left + w]
    return rearrange(grid, "1 h w d -> 1 (h w) d")


# ----------------------------------------------------------------------------------------------
# decoder: SD3-style MMDiT with a per-token-position modulated context stream
# ----------------------------------------------------------------------------------------------
class StreamBlock(nn.Module):
    """One stream of an MMDiT joint block (upstream DismantledBlock): adaLN, qkv, proj, MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, pre_only: bool = False, position_modulated: bool = False):
        super().__init__()
        self.heads, self.pre_only = heads, pre_only
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(dim, 3 * dim)
        if not pre_only:
            self.attn.proj = nn.Linear(dim, dim)
            self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
            self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if position_modulated:
            self.t_embedder = TimestepEmbedder(dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, (2 if pre_only else 6) * dim))

    def position_modulation(self, n: int, device) -> Tensor:
        """Context stream: [n, 6 D] modulation from the token positions (independent of the noise level)."""
        return self.adaLN_modulation(self.t_embedder(token_positions(n, device)))

    def pre_attention(self, x: Tensor, mod: Tensor) -> tuple[Tensor, Tensor, Tensor, tuple]:
        """x: [B, L, D]; mod: [B or 1, 1 or L, n_mod * D] -> q, k, v [B, H, L, d] and what post_attention needs."""
        chunks = mod.chunk(2 if self.pre_only else 6, dim=-1)
        qkv = self.attn.qkv(modulate(self.norm1(x), chunks[0], chunks[1]))
        q, k, v = (_heads(t, self.heads) for t in qkv.chunk(3, dim=-1))
        return q, k, v, chunks[2:]

    def post_attention(self, x: Tensor, attn: Tensor, chunks: tuple) -> Tensor:
        gate1, shift2, scale2, gate2 = chunks
        x = x + gate1 * self.attn.proj(attn)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class JointBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, last: bool):
        super().__init__()
        # The last context stream only supplies keys/values; upstream modulates it from the noise level.
        self.context_block = StreamBlock(dim, heads, mlp_ratio, pre_only=last, position_modulated=not last)
        self.x_block = StreamBlock(dim, heads, mlp_ratio)

    def forward(self, context: Tensor, x: Tensor, c: Tensor, context_mod: Tensor | None, mask: Tensor | None):
        """context [B, n, D], x [B, N, D], c [B, D]; context_mod [n, 6D] (None for the last block);
        mask: bool [B, 1, 1 or n + N, n + N] (True = attend) or None."""
        n, ctx_block = context.shape[1], self.context_block
        cmod = ctx_block.adaLN_modulation(c[:, None]) if ctx_block.pre_only else context_mod[None]  # [B, 1, 2D] | [1, n, 6D]
        cq, ck, cv, cchunks = ctx_block.pre_attention(context, cmod)
        xq, xk, xv, xchunks = self.x_block.pre_attention(x, self.x_block.adaLN_modulation(c[:, None]))
        k, v = torch.cat([ck, xk], 2), torch.cat([cv, xv], 2)  # [B, H, n + N, d]
        if ctx_block.pre_only:  # nobody reads the context after the last block: image queries only
            if mask is not None and mask.shape[2] > 1:
                mask = mask[:, :, n:]
            out = F.scaled_dot_product_attention(xq, k, v, attn_mask=mask)
            return None, self.x_block.post_attention(x, rearrange(out, "b h n d -> b n (h d)"), xchunks)
        out = F.scaled_dot_product_attention(torch.cat([cq, xq], 2), k, v, attn_mask=mask)
        out = rearrange(out, "b h n d -> b n (h d)")
        context = ctx_block.post_attention(context, out[:, :n], cchunks)
        x = self.x_block.post_attention(x, out[:, n:], xchunks)
        return context, x


class FinalLayer(nn.Module):
    def __init__(self, dim: int, patch: int, channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch * patch * channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c[:, None]).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class MMDiT(nn.Module):
    """Shared body of the flow decoder and the renderer: context embedding, joint blocks, final layer."""

    def __init__(self, cfg: SelftokConfig):
        super().__init__()
        d, depth = cfg.decoder_width, cfg.decoder_depth
        self.patch, self.channels = cfg.decoder_patch_size, cfg.latent_channels
        self.context_see_xt = cfg.context_see_xt
        self.t_embedder = TimestepEmbedder(d)
        self.context_embedder = nn.Linear(cfg.token_dim, d)
        self.register_buffer("context_pos_embed", sincos_1d(d, token_positions(cfg.num_tokens)).float()[None])  # [1, K, D]
        self.joint_blocks = nn.ModuleList(JointBlock(d, depth, cfg.mlp_ratio, last=i == depth - 1) for i in range(depth))
        self.final_layer = FinalLayer(d, cfg.decoder_patch_size, cfg.latent_channels)

    def embed_context(self, cond: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Decoder conditioning [B, n, token_dim] -> (context [B, n, D], per-block position modulations [n, 6D]).

        Both are independent of the noise level: compute once, reuse at every sampler step.
        """
        n = cond.shape[1]
        context = self.context_embedder(cond) + self.context_pos_embed[:, :n]
        mods = [blk.context_block.position_modulation(n, cond.device) for blk in self.joint_blocks[:-1]]
        return context, mods

    def attention_mask(self, visible: Tensor | None, n_ctx: int, n_img: int, device) -> Tensor | None:
        """visible: bool [B, n] (True = token visible) or None (all visible) -> SDPA mask or None.

        Image queries see the visible tokens and every image key; token queries see the visible tokens
        and, when context_see_xt, the image keys too (then one key mask [B, 1, 1, n + N] serves every row).
        """
        if self.context_see_xt and visible is None:
            return None
        if visible is None:
            visible = torch.ones(1, n_ctx, dtype=torch.bool, device=device)
        img = torch.ones(visible.shape[0], n_img, dtype=torch.bool, device=device)
        keys = torch.cat([visible, img], 1)[:, None, None, :]  # [B, 1, 1, n + N]
        if self.context_see_xt:
            return keys
        ctx_rows = torch.cat([visible, ~img], 1)[:, None, None, :]
        rows = [ctx_rows.expand(-1, 1, n_ctx, -1), keys.expand(-1, 1, n_img, -1)]
        return torch.cat(rows, 2)  # [B, 1, n + N, n + N]

    def run(self, x: Tensor, c: Tensor, context: Tensor, mods: list[Tensor], visible: Tensor | None, hw: tuple[int, int]) -> Tensor:
        """x: image-stream tokens [B, N, D]; c: [B, D] -> latent-shaped output [B, C, h, w]."""
        mask = self.attention_mask(visible, context.shape[1], x.shape[1], x.device)
        for blk, mod in zip(self.joint_blocks, mods + [None]):
            context, x = blk(context, x, c, mod, mask)
        x = self.final_layer(x, c)  # [B, N, p*p*C]
        h, w = hw[0] // self.patch, hw[1] // self.patch
        return rearrange(x, "b (h w) (p q c) -> b c (h p) (w q)", h=h, w=w, p=self.patch, q=self.patch)


class FlowDecoder(MMDiT):
    """Velocity v(x_t, t | visible tokens) of the rectified flow x_t = t * noise + (1 - t) * x0."""

    def __init__(self, cfg: SelftokConfig):
        super().__init__(cfg)
        d = cfg.decoder_width
        self.pos_max = cfg.decoder_pos_max
        self.patch_embed = nn.Conv2d(cfg.latent_channels, d, cfg.decoder_patch_size, cfg.decoder_patch_size)
        self.register_buffer("pos_embed", sincos_2d(d, cfg.decoder_pos_max)[None])  # [1, P*P, D]; SD3's table upstream

    def forward(self, x_t: Tensor, t: Tensor, context: Tensor, mods: list[Tensor], visible: Tensor | None = None) -> Tensor:
        """x_t: [B, C, h, w], t: [B] in [0, 1] -> velocity [B, C, h, w] (target noise - x0)."""
        x = self.patch_embed(x_t)
        gh, gw = x.shape[-2:]
        x = rearrange(x, "b d h w -> b (h w) d") + _center_crop_table(self.pos_embed, self.pos_max, gh, gw)
        c = self.t_embedder(t.float() * 1000.0)
        return self.run(x, c, context, mods, visible, x_t.shape[-2:])


class Renderer(MMDiT):
    """One-step decoder: learned mask tokens + positions in the image stream, t fixed at 1000."""

    def __init__(self, cfg: SelftokConfig):
        super().__init__(cfg)
        d, grid = cfg.decoder_width, cfg.latent_size // cfg.decoder_patch_size
        self.latent_size = cfg.latent_size
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid, d) * d**-0.5)
        self.mask_token = nn.Parameter(torch.randn(1, 1 if cfg.renderer_shared_mask_token else grid * grid, d) * d**-0.5)

    def forward(self, context: Tensor, mods: list[Tensor], visible: Tensor | None = None) -> Tensor:
        b, n_img = context.shape[0], self.positional_embedding.shape[0]
        x = self.mask_token.expand(b, n_img, -1) + self.positional_embedding  # [B, N, D]
        c = self.t_embedder(torch.full((b,), 1000.0, device=context.device))
        return self.run(x, c, context, mods, visible, (self.latent_size, self.latent_size))


# ----------------------------------------------------------------------------------------------
# VAE between pixels and latents
# ----------------------------------------------------------------------------------------------
def _dct_basis(channels: int, device) -> Tensor:
    """Orthonormal rows [channels, 3 * 64]: the lowest-frequency 8x8 DCT basis images of an
    opponent-colour transform (luma gets most of them). A fixed, parameter-free stand-in for the VAE."""
    n = torch.arange(8, dtype=torch.float64)
    dct = torch.cos(math.pi * (2 * n[None] + 1) * n[:, None] / 16) * math.sqrt(2 / 8)
    dct[0] /= math.sqrt(2)  # [8, 8] orthonormal DCT-II
    order = sorted(((u, v) for u in range(8) for v in range(8)), key=lambda uv: (uv[0] + uv[1], uv[0]))
    colour = torch.tensor([[1, 1, 1], [1, -1, 0], [1, 1, -2]], dtype=torch.float64)
    colour = colour / colour.norm(dim=1, keepdim=True)  # orthonormal opponent colours
    chroma = max(1, (channels - channels // 2) // 2)
    per_colour = [channels - 2 * chroma, chroma, chroma]
    rows = []
    for col, count in enumerate(per_colour):
        for u, v in order[:count]:
            img = torch.outer(dct[u], dct[v])  # [8, 8]
            rows.append((colour[col][:, None, None] * img[None]).reshape(-1))  # [3 * 64] in (c, y, x) order
    return torch.stack(rows).float().to(device)


class _LazyVAE:
    """Holds the diffusers AutoencoderKL outside the module tree (it is not part of our weights)."""

    def __init__(self):
        self.model = None

    def get(self, cfg: SelftokConfig, device):
        if self.model is None:
            try:
                from diffusers import AutoencoderKL
            except ImportError as e:
                raise ImportError("Selftok's image API needs the SD3 VAE from diffusers: pip install diffusers.") from e
            dtype = getattr(torch, cfg.vae_dtype)
            self.model = AutoencoderKL.from_pretrained(cfg.vae_repo, subfolder="vae", torch_dtype=dtype).eval()
        return self.model.to(device)


# ----------------------------------------------------------------------------------------------
# the tokenizer
# ----------------------------------------------------------------------------------------------
def _randn(shape, generator: torch.Generator | None, device) -> Tensor:
    """Gaussian noise drawn on the generator's device (so a CPU generator seeds a GPU run too)."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where).to(device)


@dataclass
class SelftokEncoding:
    """Intermediate tensors of one encode: features [B, K, Dq], projected [B, K, code_dim],
    ids [B, K], codes (looked up, after project_out) [B, K, token_dim], cond (decoder input) [B, K, token_dim]."""

    features: Tensor
    projected: Tensor
    ids: Tensor
    codes: Tensor
    cond: Tensor


class Selftok(Tokenizer):
    """Selftok image tokenizer: 1D ordered tokens decoded by a rectified-flow MMDiT or a one-step renderer.

    Images at the API: [B, 3, image_size, image_size] in [0, 1]. Latent-level API (normalised SD3
    latents [B, 16, image_size/8, image_size/8]): encode_latents, decode_latents, render_latents.
    """

    family = "selftok"
    fp32_modules = ("quantizer", "post_norm")  # precision policy: VQ distances and the normalisation of the looked-up codes stay fp32
    modality = "image"
    config_class = SelftokConfig

    def __init__(self, cfg: SelftokConfig):
        super().__init__(cfg)
        self.encoder = SelftokEncoder(cfg)
        # Cosine VQ with an EMA codebook and k-means init on the first training batch, as upstream.
        self.quantizer = VectorQuantizer(
            cfg.query_width, cfg.codebook_size, cfg.code_dim, output_dim=cfg.token_dim, cosine=True,
            ema_decay=cfg.codebook_ema_decay, kmeans_init=True, commitment_weight=cfg.commitment_weight,
            dead_code_threshold=cfg.dead_code_threshold,
        )
        self.post_norm = nn.LayerNorm(cfg.token_dim, eps=1e-6) if cfg.post_norm else nn.Identity()
        if cfg.decoder == "flow":
            self.decoder = FlowDecoder(cfg)
        else:
            self.renderer = Renderer(cfg)
        self._vae = _LazyVAE()

    # -- properties ----------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) the model takes; file readers (CLI, pipelines) resize and centre-crop images to it."""
        return (self.cfg.image_size, self.cfg.image_size)

    @property
    def token_rate(self) -> float:
        return float(self.cfg.num_tokens)

    @property
    def has_renderer(self) -> bool:
        return self.cfg.decoder == "renderer"

    @property
    def stochastic_decoder(self) -> bool:
        """The flow decoder starts from noise (pass generator= or noise=); the renderer is deterministic."""
        return not self.has_renderer

    def visible_mask(self, t: Tensor, num_tokens: int | None = None) -> Tensor:
        """Noise level t [B] in [0, 1] -> bool [B, K]: which tokens the decoder sees at t."""
        k = last_visible_token(time_index(t), self.cfg)
        return torch.arange(num_tokens or self.cfg.num_tokens, device=t.device)[None] <= k[:, None]

    # -- pixels <-> latents --------------------------------------------------------------------
    def set_vae(self, vae) -> None:
        """Use an already loaded diffusers AutoencoderKL (e.g. from a local folder) for the image API."""
        self._vae.model = vae

    def images_to_latents(self, images: Tensor) -> Tensor:
        """[B, 3, H, W] in [0, 1] -> normalised latent [B, 16, H/8, W/8] (VAE mode, then (z - shift) * scale)."""
        x = images * 2 - 1
        if self.cfg.vae == "dct":
            basis = _dct_basis(self.cfg.latent_channels, x.device)
            patches = rearrange(x, "b c (h p) (w q) -> b h w (c p q)", p=8, q=8)
            z = rearrange(patches @ basis.t(), "b h w c -> b c h w")
        else:
            vae = self._vae.get(self.cfg, x.device)
            z = vae.encode(x.to(vae.dtype)).latent_dist.mode().float()
        return (z - self.cfg.latent_shift) * self.cfg.latent_scale

    def latents_to_images(self, latents: Tensor) -> Tensor:
        z = latents / self.cfg.latent_scale + self.cfg.latent_shift
        if self.cfg.vae == "dct":
            basis = _dct_basis(self.cfg.latent_channels, z.device)
            patches = rearrange(z, "b c h w -> b h w c") @ basis
            x = rearrange(patches, "b h w (c p q) -> b c (h p) (w q)", p=8, q=8, c=3)
        else:
            vae = self._vae.get(self.cfg, z.device)
            x = vae.decode(z.to(vae.dtype)).sample.float()
        return (x.clamp(-1, 1) + 1) / 2

    # -- encode ---------------------------------------------------------------------------------
    def _check_latents(self, latents: Tensor, name: str = "latents") -> Tensor:
        s, c = self.cfg.latent_size, self.cfg.latent_channels
        if not isinstance(latents, Tensor) or latents.dim() != 4 or latents.shape[1] != c:
            shape = list(latents.shape) if isinstance(latents, Tensor) else type(latents).__name__
            raise ValueError(f"Selftok {name} must be normalised VAE latents [B, {c}, {s}, {s}]; got {shape}.")
        if latents.shape[0] == 0:
            raise ValueError(f"Selftok got an empty batch of {name}.")
        if tuple(latents.shape[-2:]) != (s, s):
            raise ValueError(f"Selftok ({self.cfg.image_size}px) takes {s}x{s} latents; got {latents.shape[-2]}x{latents.shape[-1]}.")
        if not latents.is_floating_point():
            raise TypeError(f"Selftok {name} must be floating point; got {latents.dtype}.")
        check_finite(latents, f"Selftok {name}")
        return latents.float()

    def encode_latents_full(self, latents: Tensor) -> SelftokEncoding:
        """Normalised latents -> every intermediate of the encoder and quantizer (see SelftokEncoding)."""
        latents = self._check_latents(latents)
        with torch.inference_mode():
            features = self.encoder(latents)
            ids = self.quantizer(features).ids
            projected = self.quantizer.project_in(features)
            codes = self.quantizer.ids_to_quantized(ids)
            return SelftokEncoding(features, projected, ids, codes, self.post_norm(codes))

    def encode_latents(self, latents: Tensor) -> Tokens:
        """Normalised SD3 latents [B, 16, s, s] -> Tokens ids [B, K] (layout "1d", ordered)."""
        ids = self.encode_latents_full(latents).ids
        return Tokens(ids=ids, layout="1d", meta=self.token_meta(image_size=self.cfg.image_size, num_tokens=self.cfg.num_tokens))

    @inference
    def encode(self, x: Tensor, *, target_psnr: float | None = None) -> Tokens:
        """Images [B, 3, S, S] in [0, 1] (S = image_size) -> Tokens ids [B, K].

        target_psnr: per item, the fewest tokens whose reconstruction reaches this PSNR in dB; the
            counts go to `Tokens.lengths` (ids stay [B, K]), an item that misses the target keeps K.
            The flow decoder is stochastic, so the search decodes with fixed noise: the default
            steps and the noise of `decode(tokens, generator=torch.Generator().manual_seed(0))` on
            this batch, which reproduces it (the renderer is deterministic). Bisection over k
            (zoo.api.fewest_tokens): ceil(log2 K) batched decodes, assuming quality grows with k.
        """
        if target_psnr is not None:
            target_psnr = check_target_psnr(target_psnr)
        s = self.cfg.image_size
        x = prepare_images(x, name="Selftok", size=(s, s))
        with torch.inference_mode():
            latents = self.images_to_latents(x.to(self.device))
        tokens = self.encode_latents(latents)
        if target_psnr is None:
            return tokens
        noise = None if self.has_renderer else self._noise(x.shape[0], None, torch.Generator().manual_seed(0))

        def decode(items: Tensor, part: Tensor, n: Tensor) -> Tensor:
            t = Tokens(ids=part, layout="1d", lengths=n, meta=tokens.meta)
            return self.decode(t) if noise is None else self.decode(t, noise=noise[items])

        lengths = fewest_tokens(x.to(self.device), tokens.ids, target_psnr, decode)
        return Tokens(ids=tokens.ids, layout="1d", lengths=lengths, meta={**tokens.meta, "target_psnr": target_psnr})

    # -- decode ---------------------------------------------------------------------------------
    def _cond(self, tokens: Tokens) -> tuple[Tensor, Tensor | None]:
        """Tokens -> (decoder conditioning [B, n, token_dim], per-item visibility [B, n] or None)."""
        self.check_tokens(tokens)
        if tokens.layout != "1d" or tokens.ids.dim() != 2:
            raise ValueError(f"Selftok decodes 1d tokens [B, n]; got layout {tokens.layout!r} with shape {list(tokens.ids.shape)}.")
        n = tokens.ids.shape[1]
        if n > self.cfg.num_tokens:
            raise ValueError(f"Selftok decodes at most {self.cfg.num_tokens} tokens per image; got {n}.")
        size = tokens.meta.get("image_size")
        if size is not None and int(size) != self.cfg.image_size:
            raise ValueError(f"These tokens encode {size}px images; this Selftok decodes {self.cfg.image_size}px.")
        ids = tokens.ids.to(self.device)
        lengths = None
        if tokens.lengths is not None:
            if int(tokens.lengths.min()) < 1:
                raise ValueError("Selftok needs at least one token per item (token 0 conditions every step); got a length of 0.")
            lengths = torch.arange(n, device=ids.device)[None] < tokens.lengths.to(ids.device)[:, None]
        return self.post_norm(self.quantizer.ids_to_quantized(ids)), lengths

    def _noise(self, b: int, noise: Tensor | None, generator: torch.Generator | None) -> Tensor:
        shape = (b, self.cfg.latent_channels, self.cfg.latent_size, self.cfg.latent_size)
        if noise is None:
            return _randn(shape, generator, self.device)
        if tuple(noise.shape) != shape:
            raise ValueError(f"Selftok noise must have shape {list(shape)}; got {list(noise.shape)}.")
        check_finite(noise, "Selftok noise")
        return noise.to(self.device, torch.float32)

    def _need(self, what: str) -> None:
        if what == "flow" and self.has_renderer:
            raise RuntimeError(
                "This Selftok holds the one-step renderer, not the diffusion decoder; use render_latents() / decode(), "
                "or load the tokenizer checkpoint (e.g. selftok-512) for decode_latents()."
            )
        if what == "renderer" and not self.has_renderer:
            raise RuntimeError(
                "This Selftok holds the diffusion decoder, not the renderer weights; load the renderer checkpoint "
                "(e.g. selftok-512-renderer) for render_latents(), or use decode_latents()."
            )

    def velocity(self, x_t: Tensor, t: Tensor, tokens: Tokens) -> Tensor:
        """One decoder call: x_t [B, C, s, s], t [B] in [0, 1] -> velocity [B, C, s, s].

        The visible tokens are 0..k(t) (the token schedule), further limited by tokens.lengths.
        """
        self._need("flow")
        x_t = self._check_latents(x_t, "x_t")
        t = torch.as_tensor(t, dtype=torch.float32, device=self.device).reshape(-1).expand(x_t.shape[0])
        with torch.inference_mode():
            cond, lengths = self._cond(tokens)
            visible = self.visible_mask(t, cond.shape[1])
            if lengths is not None:
                visible = visible & lengths
            context, mods = self.decoder.embed_context(cond)
            return self.decoder(x_t.to(self.device), t, context, mods, visible)

    def decode_latents(self, tokens: Tokens, *, noise: Tensor | None = None, steps: int | None = None,
                       generator: torch.Generator | None = None) -> Tensor:
        """Tokens -> normalised latents [B, 16, s, s] with the rectified-flow Euler sampler (noise at t = 1)."""
        self._need("flow")
        steps = self.cfg.sampling_steps if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"steps must be at least 1; got {steps}.")
        with torch.inference_mode():
            cond, lengths = self._cond(tokens)
            x = self._noise(cond.shape[0], noise, generator)
            context, mods = self.decoder.embed_context(cond)

            def velocity(x: Tensor, t: Tensor) -> Tensor:  # t: a 0-d CPU float32 grid point
                # Only the visible prefix 0..k(t) enters the decoder: masked keys would contribute exact zeros.
                n_vis = min(int(last_visible_token(time_index(t.reshape(1)), self.cfg)) + 1, cond.shape[1])
                vis = None if lengths is None else lengths[:, :n_vis]
                return self.decoder(x, t.to(x.device).expand(x.shape[0]), context[:, :n_vis], [m[:n_vis] for m in mods], vis)

            return euler(velocity, x, linspace_timesteps(steps))  # CPU grid: the schedule is read as Python ints

    def render_latents(self, tokens: Tokens) -> Tensor:
        """Tokens -> normalised latents [B, 16, s, s] with the one-step renderer."""
        self._need("renderer")
        with torch.inference_mode():
            cond, lengths = self._cond(tokens)
            context, mods = self.renderer.embed_context(cond)
            return self.renderer(context, mods, lengths)

    @inference
    def decode(self, tokens: Tokens, *, noise: Tensor | None = None, steps: int | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """Tokens -> images [B, 3, S, S] in [0, 1]: renderer (one step) when loaded, else the flow sampler."""
        if self.has_renderer:
            if noise is not None or steps is not None:
                raise ValueError("The Selftok renderer decodes in one deterministic step; it takes no noise= or steps=.")
            latents = self.render_latents(tokens)
        else:
            latents = self.decode_latents(tokens, noise=noise, steps=steps, generator=generator)
        with torch.inference_mode():
            return self.latents_to_images(latents)

    # -- training --------------------------------------------------------------------------------
    def flow_noise_shape(self, x: Tensor) -> tuple[int, ...]:
        """The flow runs on the latent: images [B, 3, S, S] -> noise shape [B, C, S/8, S/8]."""
        return (x.shape[0], self.cfg.latent_channels, self.cfg.latent_size, self.cfg.latent_size)

    def flow_forward(self, x: Tensor, *, t: Tensor, noise: Tensor) -> FlowOutput:
        """Training pass for training/train_flow_decoder.py (the zoo.api.FlowOutput agreement).

        x [B, 3, S, S] in [0, 1]; t [B] in [0, 1] (1 = pure noise, as upstream); noise [B, C, S/8, S/8]
        (flow_noise_shape). The frozen VAE gives the normalised latent x0; the encoder, the cosine VQ
        (straight-through, EMA codebook) and the decoder are trained together: x_t = t noise + (1 - t) x0,
        the decoder sees only the tokens visible at t (the schedule's mask, per item), and the velocity
        target is noise - x0. losses: the VQ's (commitment); metrics: its code usage.
        """
        self._need("flow")
        s = self.cfg.image_size
        x = prepare_images(x, name="Selftok", size=(s, s)).to(self.device)
        b = x.shape[0]
        shape = self.flow_noise_shape(x)
        if not isinstance(noise, Tensor) or tuple(noise.shape) != shape:
            got = list(noise.shape) if isinstance(noise, Tensor) else type(noise).__name__
            raise ValueError(f"Selftok flow noise must have the latent's shape {list(shape)} (flow_noise_shape); got {got}.")
        t = torch.as_tensor(t, dtype=torch.float32, device=self.device).reshape(-1)
        if t.shape[0] != b:
            raise ValueError(f"Selftok flow timesteps must be one per image ([{b}]); got shape {list(t.shape)}.")
        if bool(((t < 0) | (t > 1)).any()):
            raise ValueError("Selftok flow timesteps must lie in [0, 1] (1 = pure noise).")
        with torch.no_grad():
            latents = self.images_to_latents(x)  # [B, C, s, s]; the VAE is not trained
        quant = self.quantizer(self.encoder(latents))
        cond = self.post_norm(quant.quantized)  # [B, K, token_dim]
        eps = noise.to(latents.device, latents.dtype)
        tb = t[:, None, None, None]
        x_t = tb * eps + (1 - tb) * latents
        context, mods = self.decoder.embed_context(cond)
        v = self.decoder(x_t, t, context, mods, self.visible_mask(t))  # tokens 0..k(t) visible per item
        tokens = Tokens(ids=quant.ids.detach(), layout="1d", meta=self.token_meta(image_size=s, num_tokens=self.cfg.num_tokens))
        return FlowOutput(velocity=v, target=eps - latents, tokens=tokens, losses=dict(quant.losses), metrics=dict(quant.metrics))

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> TokenizerOutput:
        """Images -> TokenizerOutput. Flow decoder: flow_forward with t = sigmoid(N(0, 1)) (logit-normal) and
        noise ~ N(0, I) from `generator`, losses velocity_mse + the VQ's, recon = the one-step x0 estimate
        x_t - t v. Renderer (encoder and decoder trained on the latent): latent_mse + the VQ's."""
        s = self.cfg.image_size
        x = prepare_images(x, name="Selftok", size=(s, s)).to(self.device)
        if not self.has_renderer:
            b = x.shape[0]
            t = torch.sigmoid(_randn((b,), generator, self.device))
            noise = _randn(self.flow_noise_shape(x), generator, self.device)
            out = self.flow_forward(x, t=t, noise=noise)
            tb = t[:, None, None, None]
            x_t = tb * noise + (1 - tb) * (noise - out.target)  # latents = noise - target
            pred = x_t - tb * out.velocity  # one-step estimate of x0
            losses = {"velocity_mse": F.mse_loss(out.velocity, out.target), **out.losses}
            return TokenizerOutput(recon=self.latents_to_images(pred), tokens=out.tokens, losses=losses)
        with torch.no_grad():
            latents = self.images_to_latents(x)
        quant = self.quantizer(self.encoder(latents))
        context, mods = self.renderer.embed_context(self.post_norm(quant.quantized))
        pred = self.renderer(context, mods)
        losses = {"latent_mse": F.mse_loss(pred, latents), **quant.losses}
        tokens = Tokens(ids=quant.ids.detach(), layout="1d", meta=self.token_meta(image_size=s, num_tokens=self.cfg.num_tokens))
        return TokenizerOutput(recon=self.latents_to_images(pred), tokens=tokens, losses=losses)

    def example_input(self, batch_size: int = 2, generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
        s = self.cfg.image_size
        return torch.rand(batch_size, 3, s, s, generator=generator), {}


# ----------------------------------------------------------------------------------------------
# official checkpoints
# ----------------------------------------------------------------------------------------------
# Released widths of the upstream model-zoo names (upstream model_zoo.py); the fixture's config.json adds
# its own names under "zoo_entries_added" with the same fields.
_ENCODERS = {"Enc-Qformer-Uni-XL/2": dict(patch_size=2, hidden_size=64, num_heads=4, depth=16, query_dim=512, query_heads=8)}
_DECODERS = {
    "MMDiT_XL": dict(patch_size=2, depth=24, pos_embed_max_size=192),
    "MMDiT_XL_Renderer": dict(patch_size=2, depth=24, pos_embed_max_size=192),
}

# Official keys that inference does not use, dropped by the converter (everything else must be consumed):
DROPPED_KEY_PATTERNS = (
    r"diffusion\..*",  # sampler schedule buffers (timestep_map ...): our sampler computes the schedule
    r"encoder\.final_layer_norm2?\..*",  # norms applied only with pre_norm=True (released: False)
    r"encoder\.quantizer\.(continuous|steps|count)",  # training counters, mutated by every forward upstream
    r"encoder\.quantizer\._codebook\.(cluster_size_wo_react|timestep_p_over_c|tpc_initted)",  # entropy-regulariser state
    r"model\.y_embedder\..*",  # pooled-vector embedder; y is None at inference
)


def _dropped(key: str, cfg: SelftokConfig) -> bool:
    if any(re.fullmatch(p, key) for p in DROPPED_KEY_PATTERNS):
        return True
    last = cfg.decoder_depth - 1  # the last context block is modulated by the timestep: its position embedder is unused
    if key.startswith(f"model.joint_blocks.{last}.context_block.t_embedder."):
        return True
    return cfg.decoder == "renderer" and key == "model.pos_embed"  # the renderer has no noisy-image input


_RENAMES = (
    ("encoder.x_embedder.proj.", "encoder.patch_embed."),
    ("encoder.final_layer_norm3.", "post_norm."),
    ("encoder.quantizer._codebook.embed_avg", "quantizer.embed_sum"),  # EMA state kept for fine-tuning
    ("encoder.quantizer._codebook.embed", "quantizer.codebook"),
    ("encoder.quantizer._codebook.cluster_size", "quantizer.cluster_size"),
    ("encoder.quantizer._codebook.initted", "quantizer.initialized"),
    ("encoder.quantizer.", "quantizer."),
    ("model.x_embedder.proj.", "decoder.patch_embed."),
)


def remap_state_dict(state_dict: Mapping[str, Tensor], cfg: SelftokConfig) -> dict[str, Tensor]:
    """Official ImageTokenizer keys (encoder.*, model.*, diffusion.*) -> ours. Unknown keys pass through
    unchanged so that strict loading names them."""
    out: dict[str, Tensor] = {}
    body = "decoder." if cfg.decoder == "flow" else "renderer."
    for key, value in state_dict.items():
        if _dropped(key, cfg):
            continue
        new = key
        for old, rep in _RENAMES:
            if new.startswith(old):
                new = rep + new[len(old) :]
                break
        if new.startswith("model."):
            new = body + new[len("model.") :]
        if new in ("quantizer.codebook", "quantizer.embed_sum", "quantizer.cluster_size"):
            value = value[0]  # one codebook head: [1, C, ...] -> [C, ...]
        elif new == "quantizer.initialized":
            value = value.reshape(()).bool()
        out[new] = value
    return out


def _params_section(config: Mapping, state_dict: Mapping[str, Tensor]) -> Mapping:
    """Pick the official `params` that match the checkpoint: renderer checkpoints have model.mask_token."""
    is_renderer = "model.mask_token" in state_dict
    if "params" in config:
        return config["params"]
    for key in (("renderer_tokenizer", "tokenizer") if is_renderer else ("tokenizer",)):
        section = config.get(key)
        if isinstance(section, Mapping) and "params" in section:
            return section["params"]
    raise ValueError(
        "Selftok config has no tokenizer.params section (the official yml layout) "
        f"{'nor renderer_tokenizer.params ' if is_renderer else ''}; top-level keys: {sorted(config)}."
    )


def _csv(v) -> tuple[int, ...]:
    return tuple(int(s) for s in (v.split(",") if isinstance(v, str) else v))


def from_official_config(config: Mapping | None, state_dict: Mapping[str, Tensor], metadata: Mapping | None = None) -> SelftokConfig:
    """Official yml (tokenizer.params), the fixture's config.json, or None (released defaults) -> SelftokConfig.
    Widths, depths, token count and codebook size are read from the checkpoint's shapes."""
    sd = state_dict
    is_renderer = "model.mask_token" in sd
    if "encoder.query_tokens" not in sd or "encoder.quantizer._codebook.embed" not in sd:
        raise ValueError("This is not a Selftok checkpoint: it lacks encoder.query_tokens / encoder.quantizer._codebook.embed.")
    if not is_renderer and "model.x_embedder.proj.weight" not in sd:
        raise ValueError("Selftok checkpoint has neither the diffusion decoder (model.x_embedder) nor the renderer (model.mask_token).")
    k, query_width = sd["encoder.query_tokens"].shape[1:]
    codebook = sd["encoder.quantizer._codebook.embed"]
    enc_w = sd["encoder.x_embedder.proj.weight"]
    enc_depth = 1 + max(int(m.group(1)) for m in (re.match(r"encoder\.blocks\.(\d+)\.", s) for s in sd) if m)
    dec_depth = 1 + max(int(m.group(1)) for m in (re.match(r"model\.joint_blocks\.(\d+)\.", s) for s in sd) if m)
    token_dim = sd["model.context_embedder.weight"].shape[1]
    fields: dict[str, Any] = dict(
        num_tokens=int(k), query_width=int(query_width), codebook_size=int(codebook.shape[-2]), code_dim=int(codebook.shape[-1]),
        encoder_width=int(enc_w.shape[0]), latent_channels=int(enc_w.shape[1]), encoder_patch_size=int(enc_w.shape[-1]),
        encoder_depth=enc_depth, decoder_depth=dec_depth, token_dim=int(token_dim),
        encoder_pos_max=math.isqrt(sd["encoder.pos_embed"].shape[1]),
        decoder="renderer" if is_renderer else "flow",
    )
    if is_renderer:
        grid = math.isqrt(sd["model.positional_embedding"].shape[0])
        fields["renderer_shared_mask_token"] = sd["model.mask_token"].shape[1] == 1
        fields["context_see_xt"] = False
        fields["image_size"] = grid * 2 * 8
    else:
        fields["decoder_patch_size"] = int(sd["model.x_embedder.proj.weight"].shape[-1])
        if "model.pos_embed" in sd:
            fields["decoder_pos_max"] = math.isqrt(sd["model.pos_embed"].shape[1])
    fields["post_norm"] = "encoder.final_layer_norm3.weight" in sd
    if config is None:
        if k != 512:  # only the 512-token yml is published; assume one linear stage otherwise (see NOTES.md)
            fields.update(stages=(1000,), k_per_stage=(int(k),))
        return SelftokConfig(**fields)
    params = _params_section(config, sd)
    extra = config.get("zoo_entries_added", {}) if isinstance(config, Mapping) else {}
    enc_name, dec_name = params.get("enc"), params.get("model")
    enc = {**_ENCODERS, **extra}.get(enc_name)
    dec = {**_DECODERS, **extra}.get(dec_name)
    if enc is None or dec is None:
        raise ValueError(
            f"Unknown Selftok encoder/decoder names {enc_name!r} / {dec_name!r}; known: {sorted({**_ENCODERS, **_DECODERS})}."
        )
    enc_cfg = params.get("encoder_config", {})
    if enc_cfg.get("qformer_mode", "dual") != "dual" or enc_cfg.get("pre_norm") or enc_cfg.get("qk_norm") or enc_cfg.get("attn_mask"):
        raise ValueError(f"Selftok here supports the released encoder (dual mode, no pre_norm/qk_norm/attn_mask); got {dict(enc_cfg)}.")
    if not params.get("enable_enc_variable_size", True) or params.get("stages") is None:
        raise ValueError("Selftok here supports the released setting enable_enc_variable_size=True with a staged schedule (stages, k_per_stage).")
    if params.get("decoder_config", {}).get("time_adaln", "pos_emb") != "pos_emb":
        raise ValueError(f"Selftok here supports decoder_config.time_adaln='pos_emb'; got {params['decoder_config']['time_adaln']!r}.")
    fields.update(
        image_size=int(params["image_size"]),
        stages=_csv(params["stages"]),
        k_per_stage=_csv(params["k_per_stage"]),
        encoder_heads=int(enc["num_heads"]),
        query_heads=int(enc["query_heads"]),
        post_norm=bool(enc_cfg.get("post_norm", True)),
        context_see_xt=bool(params.get("context_see_xt", False)),
    )
    if int(params["k"]) != k:
        raise ValueError(f"Selftok config says k={params['k']} tokens but the checkpoint holds {k} query tokens.")
    return SelftokConfig(**fields)


# ----------------------------------------------------------------------------------------------
# catalogue
# ----------------------------------------------------------------------------------------------
TINY_CONFIG = SelftokConfig(
    image_size=64, num_tokens=16, k_per_stage=(6, 5, 2, 2, 1),
    encoder_width=32, encoder_heads=2, encoder_depth=2, query_width=64, query_heads=4, encoder_pos_max=16,
    codebook_size=64, decoder_depth=2, decoder_pos_max=8,
    vae="dct", latent_shift=0.0, latent_scale=0.25,
)

_1024 = dict(num_tokens=1024, stages=(1000,), k_per_stage=(1024,))  # schedule unpublished; see NOTES.md
_RENDERER = dict(decoder="renderer", context_see_xt=False)


def _pre(filename: str) -> PretrainedCfg:
    return PretrainedCfg(hub_id=HUB_ID, filename=filename, license=LICENSE, paper=PAPER)


VARIANTS = (
    Variant("selftok-512", SelftokConfig(), _pre("tokenizer_512_ckpt.pth"),
            description="512 tokens / 256px image, 32,768-code cosine VQ, 50-step rectified-flow MMDiT decoder."),
    Variant("selftok-512-renderer", SelftokConfig(**_RENDERER), _pre("renderer_512_ckpt.pth"),
            description="Same encoder and tokens as selftok-512; one-step MMDiT renderer decoder."),
    Variant("selftok-1024", SelftokConfig(**_1024), _pre("tokenizer_1024_ckpt.pth"),
            description="1024 tokens / 256px image, 50-step rectified-flow MMDiT decoder (token schedule unpublished)."),
    Variant("selftok-1024-renderer", SelftokConfig(**_1024, **_RENDERER), _pre("renderer_1024_ckpt.pth"),
            description="1024 tokens / 256px image, one-step renderer decoder."),
    Variant("selftok-tiny-64", TINY_CONFIG, None, embedded="selftok/tiny-64", official=False,
            description="Tiny 64px / 16-token Selftok with a fixed DCT latent instead of the SD3 VAE (tests, CPU)."),
)

FAMILY = FamilySpec(
    name="selftok",
    tokenizer=Selftok,
    config=SelftokConfig,
    variants=VARIANTS,
    remap_state_dict=remap_state_dict,
    from_official_config=from_official_config,
    paper=PAPER,
    upstream=UPSTREAM,
    description="1D image tokens ordered by a diffusion decoder (token k visible only above a noise level).",
    tiny_config=TINY_CONFIG,
)
