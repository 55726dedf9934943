"""FlexTok: resampling images into 1D token sequences of flexible length.

Paper: Bachmann, Allardice, Mizrahi et al., "FlexTok: Resampling Images into 1D Token Sequences of
Flexible Length", ICML 2025, arXiv 2502.13967. Upstream: https://github.com/apple/ml-flextok
(code: Apple sample-code license; released weights: Apple ML Research Model license, research use).
Read and re-written here; no upstream code is copied.

Pipeline (256x256 image, released sizes):
  image [B, 3, 256, 256] in [0, 1] -> [-1, 1] -> VAE (diffusers AutoencoderKL, f8, 16 channels,
  posterior mode x scaling factor) -> latent [B, 16, 32, 32] -> 2x2 patches [B, 256, D]
  -> ViT over [patches | 256 registers] with a "causal last" mask (patches see patches; register i
  sees every patch and registers 0..i) -> registers -> LayerNorm + Linear -> FSQ [8,8,8,5,5,5]
  -> ids [B, k] for any k <= 256 (the registers are causal, so the first k do not depend on the rest).
Decoding is a rectified-flow transformer over [noised latent patches | register tokens]: the kept
registers are embedded (Linear + learned 1D position), positions >= k are replaced by a learned
mask token (nested dropout at training time), and for classifier-free guidance all registers are
replaced by a learned null condition. adaLN-zero modulation from the timestep embedding, with
separate shift/scale/gate sets for the patch and the register segments (expansion 2). Sampling:
zoo.samplers.euler on the uniform grid t = 1 -> 0, with plain CFG or APG (Sadat et al., arXiv 2410.02416).

Numerics that differ from a textbook ViT/DiT (all matter for parity): attention scale 8/head_dim
(muP), QK-LayerNorm over head_dim, every LayerNorm without affine and in fp32, SwiGLU hidden
int(2 * int(mlp_ratio * D) / 3), adaLN chunks ordered gate, gate, shift, scale, shift, scale,
timestep embedding cat[cos, sin] with max_period 256 and frequencies scaled by 1000 / max_timestep.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from zoo.api import FlowOutput, Tokenizer, TokenizerOutput, Tokens, config_to_dict, inference
from zoo.inputs import check_target_psnr, fewest_tokens, prepare_images
from zoo.blocks.repa import ReprProjector, align_to_grid, repa_loss
from zoo.blocks.embeddings import TimestepEmbedder, sincos_2d
from zoo.blocks.norm import LayerNorm
from zoo.blocks.transformer import AdaLNTransformerBlock, TransformerBlock, modulate
from zoo.quantizers.dropout import NestedDropout
from zoo.quantizers.fsq import FSQ
from zoo.samplers import Guidance, euler

from .vae import FlexTokVAEConfig, build_vae, vae_images, vae_latents

PAPER = "arXiv:2502.13967"
UPSTREAM = "https://github.com/apple/ml-flextok"
WEIGHTS_LICENSE = "apple-amlr"  # Apple Machine Learning Research Model license (LICENSE_WEIGHTS upstream)
FLEXTOK_ADALN_ORDER = ("gate_msa", "gate_mlp", "shift_msa", "scale_msa", "shift_mlp", "scale_mlp")


@dataclass(frozen=True)
class FlexTokConfig:
    """Defaults: flextok-d18-d28-in1k (EPFL-VILAB/flextok_d18_d28_in1k)."""

    image_size: int = 256  # training resolution; images up to this size (multiples of 8 * patch_size) are accepted
    num_registers: int = 256  # max tokens per image (register tokens)
    fsq_levels: tuple[int, ...] = (8, 8, 8, 5, 5, 5)  # 64,000 codes
    patch_size: int = 2  # latent patch side, encoder and decoder
    enc_dim: int = 1152
    enc_depth: int = 18  # the variant names give the depths: flextok-d<enc_depth>-d<dec_depth>-<data>
    enc_head_dim: int = 64  # heads = dim // head_dim (decoder alike); attention scale 8 / head_dim (muP)
    dec_dim: int = 1792
    dec_depth: int = 28
    dec_head_dim: int = 64
    mlp_ratio: float = 4.0  # SwiGLU hidden = int(2 * int(mlp_ratio * dim) / 3)
    adaln_expansion: int = 2  # 2: separate adaLN sets for patch and register tokens; 1: one set
    null_cond: str = "learned"  # CFG null condition: "learned" (a vector) or "zero"
    time_freq_dim: int = 256  # sinusoidal timestep features before the MLP
    max_timestep: float = 1.0  # t in [0, max_timestep]; frequencies scaled by 1000 / max_timestep
    # VAE: diffusers AutoencoderKL (SDXL-VAE layout), frozen.
    vae_latent_channels: int = 16
    vae_block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    vae_layers_per_block: int = 2
    vae_norm_num_groups: int = 32
    vae_use_quant_conv: bool = True
    vae_use_post_quant_conv: bool = True
    # UNVERIFIED default: the released value is read at conversion (checkpoint header or VAE config.json).
    vae_scaling_factor: float = 1.0
    vae_sample_posterior: bool = False  # False: posterior mode (deterministic tokens); True: a sample
    # training from scratch: a released VAE (catalogue name such as flextok-vae-c16, hub id or diffusers folder) whose
    # weights fill the frozen VAE when the model is built; saved configs clear it (the weights carry the VAE)
    vae_init: str = ""
    # "vae": the flow runs on AutoencoderKL latents (released models); "pixels": no VAE, the flow runs
    # on [-1, 1] RGB patches (latent channels 3, factor 1; the vae_* fields are then unused)
    latent_space: str = "vae"
    # decode() defaults (upstream README): Euler steps, guidance scale, APG instead of plain CFG
    decode_steps: int = 20
    guidance_scale: float = 7.5
    apg: bool = True
    # training only (inference ignores them)
    nested_dropout_mode: str = "pow2"  # kept prefix k drawn from {1, 2, 4, ..., R} (paper); "uniform": U{1..R}
    cond_dropout_prob: float = 0.2  # CFG: chance that a sample's registers all become the null condition
    repa_encoder: str = ""  # REPA target: "" off, a timm model name, or "custom" (a module given to zoo.train.flextok)
    repa_dim: int = 0  # width of the REPA encoder's features (the projector's output); 0 when off
    repa_layer: int = 1  # decoder block whose patch features are aligned (0-based; FlexTok: after block 1)
    repa_weight: float = 1.0  # times the REPA loss (1 - cosine similarity)
    repa_hidden: int = 2048  # projector MLP width
    repa_image_size: int = 224  # images are resized to this side for the REPA encoder (DINOv2/14 -> 16x16)
    repa_pretrained: bool = True  # timm encoder with its pretrained weights (False: random, for tests)

    def __post_init__(self):
        if self.null_cond not in ("learned", "zero"):
            raise ValueError(f"null_cond must be 'learned' or 'zero'; got {self.null_cond!r}.")
        if self.latent_space not in ("vae", "pixels"):
            raise ValueError(f"latent_space must be 'vae' or 'pixels'; got {self.latent_space!r}.")
        if self.nested_dropout_mode not in ("pow2", "uniform", "uniform_pow2"):
            raise ValueError(f"nested_dropout_mode must be 'pow2', 'uniform' or 'uniform_pow2'; got {self.nested_dropout_mode!r}.")
        if not 0.0 <= self.cond_dropout_prob < 1.0:
            raise ValueError(f"cond_dropout_prob must lie in [0, 1); got {self.cond_dropout_prob}.")
        if self.repa_encoder and (self.repa_dim < 1 or not 0 <= self.repa_layer < self.dec_depth):
            raise ValueError(
                f"REPA needs repa_dim >= 1 (the encoder's feature width) and repa_layer in 0..{self.dec_depth - 1}; "
                f"got repa_dim={self.repa_dim}, repa_layer={self.repa_layer}."
            )
        if self.adaln_expansion not in (1, 2):
            raise ValueError(f"adaln_expansion must be 1 or 2; got {self.adaln_expansion}.")
        for name in ("enc", "dec"):
            dim, hd = getattr(self, f"{name}_dim"), getattr(self, f"{name}_head_dim")
            if dim % hd:
                raise ValueError(f"{name}_dim {dim} is not divisible by {name}_head_dim {hd}.")

    @property
    def vae_factor(self) -> int:
        """Pixels per latent pixel (1 in pixel space)."""
        return 1 if self.latent_space == "pixels" else 2 ** (len(self.vae_block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        """Channels of what the flow runs on (3 in pixel space)."""
        return 3 if self.latent_space == "pixels" else self.vae_latent_channels

    @property
    def vae_config(self) -> FlexTokVAEConfig:
        """The VAE's sizes and scaling (the vae_* fields)."""
        return FlexTokVAEConfig(
            latent_channels=self.vae_latent_channels, block_out_channels=self.vae_block_out_channels,
            layers_per_block=self.vae_layers_per_block, norm_num_groups=self.vae_norm_num_groups,
            use_quant_conv=self.vae_use_quant_conv, use_post_quant_conv=self.vae_use_post_quant_conv,
            scaling_factor=self.vae_scaling_factor, sample_posterior=self.vae_sample_posterior, image_size=self.image_size,
        )

    @property
    def max_grid(self) -> int:
        """Patches per side at image_size (size of the sin-cos tables)."""
        return self.image_size // (self.vae_factor * self.patch_size)


def _mlp_hidden(dim: int, ratio: float) -> int:
    return int(2 * int(dim * ratio) / 3)


def patchify(x: Tensor, p: int) -> Tensor:
    """[B, C, H, W] -> [B, H/p, W/p, p*p*C] (row, column, channel order within a patch)."""
    return rearrange(x, "b c (h p0) (w p1) -> b h w (p0 p1 c)", p0=p, p1=p)


def unpatchify(x: Tensor, p: int, h: int, w: int) -> Tensor:
    """[B, h*w, p*p*C] -> [B, C, h*p, w*p]."""
    return rearrange(x, "b (h w) (p0 p1 c) -> b c (h p0) (w p1)", h=h, w=w, p0=p, p1=p)


class FlexTokEncoder(nn.Module):
    """VAE latent [B, C, h, w] -> register features before FSQ [B, k, len(levels)]."""

    def __init__(self, cfg: FlexTokConfig):
        super().__init__()
        d, g = cfg.enc_dim, cfg.max_grid
        self.patch_size = cfg.patch_size
        self.patch_emb = nn.Linear(cfg.latent_channels * cfg.patch_size**2, d)
        posemb = sincos_2d(d, g, rows_first=True, dtype=torch.float32)  # [G*G, D], MoCo v3's table, fixed
        self.register_buffer("posemb", rearrange(posemb, "(h w) d -> d h w", h=g))  # [D, G, G]
        self.registers = nn.Parameter(torch.randn(cfg.num_registers, d) * 0.02)  # [R, D]
        self.blocks = nn.ModuleList(
            TransformerBlock(d, d // cfg.enc_head_dim, _mlp_hidden(d, cfg.mlp_ratio), qk_norm=True, attn_scale=8.0 / cfg.enc_head_dim)
            for _ in range(cfg.enc_depth)
        )
        self.norm = LayerNorm(d)
        self.to_latents = nn.Linear(d, len(cfg.fsq_levels))

    def forward(self, latents: Tensor, num_registers: int) -> tuple[Tensor, Tensor]:
        """-> (pre-quantization register features [B, k, L] fp32, register hidden states [B, k, D])."""
        x = patchify(latents, self.patch_size)  # [B, h, w, p*p*C]
        h, w = x.shape[1:3]
        x = self.patch_emb(x) + rearrange(self.posemb[:, :h, :w], "d h w -> h w d")
        x = rearrange(x, "b h w d -> b (h w) d")  # [B, P, D]
        n_p, k = x.shape[1], num_registers
        regs = self.registers[:k].expand(x.shape[0], -1, -1)  # [B, k, D]
        x = torch.cat([x, regs.to(x.dtype)], dim=1)  # [B, P + k, D]
        # "causal last": every token sees all patches; register i also sees registers 0..i.
        idx = torch.arange(n_p + k, device=x.device)
        mask = (idx[None, :] < n_p) | (idx[None, :] <= idx[:, None])  # [N, N], True = may attend
        for blk in self.blocks:
            x = blk(x, mask)
        regs = x[:, n_p:]  # [B, k, D]
        z = F.linear(self.norm(regs.float()), self.to_latents.weight.float(), self.to_latents.bias.float())
        return z, regs


class FlexTokDecoder(nn.Module):
    """Rectified-flow velocity v(x_t, t | registers): x_t [B, C, h, w] -> v [B, C, h, w]."""

    def __init__(self, cfg: FlexTokConfig):
        super().__init__()
        d, g, p, c = cfg.dec_dim, cfg.max_grid, cfg.patch_size, cfg.latent_channels
        self.patch_size, self.expansion = p, cfg.adaln_expansion
        self.max_timestep = cfg.max_timestep
        self.from_latents = nn.Linear(len(cfg.fsq_levels), d)
        self.register_posemb = nn.Parameter(torch.randn(cfg.num_registers, d) * 0.02)  # [R, D]
        # nested dropout: registers >= k become a learned mask token (k drawn in training, given at inference)
        self.nested_dropout = NestedDropout(d, cfg.num_registers, mode=cfg.nested_dropout_mode)
        self.null_cond = nn.Parameter(torch.randn(d) * 0.02) if cfg.null_cond == "learned" else None
        self.patch_emb = nn.Linear(c * p * p, d)
        posemb = sincos_2d(d, g, rows_first=True, dtype=torch.float32)  # [G*G, D], MoCo v3's table, fixed
        self.register_buffer("posemb", rearrange(posemb, "(h w) d -> d h w", h=g))  # [D, G, G]
        self.time_embedder = TimestepEmbedder(d, cfg.time_freq_dim, max_period=256, scale=1000.0 / cfg.max_timestep)
        self.blocks = nn.ModuleList(
            AdaLNTransformerBlock(
                d, d // cfg.dec_head_dim, _mlp_hidden(d, cfg.mlp_ratio), qk_norm=True, attn_scale=8.0 / cfg.dec_head_dim,
                expansion=cfg.adaln_expansion, chunk_order=FLEXTOK_ADALN_ORDER,
            )
            for _ in range(cfg.dec_depth)
        )
        self.norm = LayerNorm(d)
        self.head_adaLN = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))  # shift, scale
        self.head = nn.Linear(d, p * p * c)

    def condition(self, codes: Tensor, keep: Tensor) -> Tensor:
        """FSQ codes [B, R, L] (padded to R) and kept counts keep [B] -> register tokens [B, R, D].
        The position embedding is added before the mask token replaces the tail (as upstream)."""
        regs = self.from_latents(codes) + self.register_posemb[: codes.shape[1]]  # [B, R, D]
        return self.nested_dropout(regs, keep=keep).x

    def uncondition(self, like: Tensor, drop: Tensor | None = None) -> Tensor:
        """The CFG null condition: every register replaced by the learned vector (or zeros); with
        drop [B] bool, only the items where it is True (training-time condition dropout)."""
        if drop is None:
            return torch.zeros_like(like) if self.null_cond is None else self.null_cond.to(like.dtype).expand_as(like)
        null = like.new_zeros(()) if self.null_cond is None else self.null_cond.to(like.dtype)
        return torch.where(drop[:, None, None], null, like)

    def time_embedding(self, t: Tensor) -> Tensor:
        if (t > self.max_timestep).any() or (t < 0).any():
            raise ValueError(f"FlexTok timesteps must lie in [0, {self.max_timestep}]; got [{float(t.min())}, {float(t.max())}].")
        return self.time_embedder(t)  # [B, D]

    def forward(self, x_t: Tensor, t: Tensor, registers: Tensor, return_repa: int | None = None):
        """x_t [B, C, h, w], t [B] in [0, 1], registers [B, R, D] -> velocity [B, C, h, w]."""
        p = self.patch_size
        x = patchify(x_t, p)  # [B, h', w', p*p*C]
        h, w = x.shape[1:3]
        x = self.patch_emb(x) + rearrange(self.posemb[:, :h, :w], "d h w -> h w d")
        x = rearrange(x, "b h w d -> b (h w) d")  # [B, P, D]
        n_p = x.shape[1]
        x = torch.cat([x, registers.to(x.dtype)], dim=1)  # [B, P + R, D], full attention
        temb = self.time_embedding(t)
        segments = (n_p, registers.shape[1]) if self.expansion == 2 else None
        repa = None
        for i, blk in enumerate(self.blocks):
            x = blk(x, temb, segments)
            if return_repa == i:
                repa = x[:, :n_p]
        shift, scale = self.head_adaLN(temb)[:, None].chunk(2, dim=-1)  # [B, 1, D] each
        out = self.head(modulate(self.norm(x[:, :n_p]), shift, scale))  # [B, P, p*p*C]
        v = unpatchify(out, p, h, w)
        return (v, repa) if return_repa is not None else v


class FlexTok(Tokenizer):
    """FlexTok image tokenizer: images [B, 3, H, W] in [0, 1] -> ordered 1D ids [B, k], k in 1..256.

    encode(x, num_tokens=k): the first k register tokens (all 256 by default).
    decode(tokens, steps=, guidance_scale=, apg=, generator= | noise=): rectified-flow sampling from
    any prefix; `noise` is the initial latent x_1 [B, C, H/8, W/8].
    """

    family = "flextok"
    fp32_modules = ("quantizer",)  # precision policy: FSQ rounding stays fp32
    modality = "image"
    config_class = FlexTokConfig
    stochastic_decoder = True  # decode draws the initial latent noise (pass generator= or noise=)

    @property
    def batch_split(self) -> dict[str, tuple[str, ...]]:
        """Big batches run in exact chunks: decode draws its noise image by image, in order; encode only
        when the VAE takes its posterior's mode (a sampled posterior is drawn for the whole batch)."""
        return {"decode": ("noise",)} if self.cfg.vae_sample_posterior else {"encode": (), "decode": ("noise",)}

    def __init__(self, cfg: FlexTokConfig):
        super().__init__(cfg)
        self.vae = build_vae(cfg.vae_config).requires_grad_(False) if cfg.latent_space == "vae" else None  # frozen
        if cfg.vae_init and self.vae is not None:
            from .convert import load_vae_weights  # here, not at the top: convert.py imports this module

            load_vae_weights(self.vae, cfg.vae_init, cfg.vae_scaling_factor)
        self.encoder = FlexTokEncoder(cfg)
        self.quantizer = FSQ(cfg.fsq_levels)
        self.decoder = FlexTokDecoder(cfg)
        # REPA (training only): projector from decoder patch features to the frozen encoder's width. The frozen
        # encoder itself belongs to the training program (zoo.train.flextok): never saved, trained or averaged.
        self.repa_projector = ReprProjector(cfg.dec_dim, cfg.repa_hidden, cfg.repa_dim) if cfg.repa_encoder else None

    def config_dict(self) -> dict[str, Any]:
        return config_to_dict(dataclasses.replace(self.cfg, vae_init=""))  # the saved weights hold the VAE

    # -- properties (codebook_size is the FSQ's, read by the base class) --------------------------
    @property
    def max_tokens(self) -> int:
        """Any prefix 1..max_tokens decodes (`zoo eval` sweeps it)."""
        return self.cfg.num_registers

    @property
    def latent_factor(self) -> int:
        """Pixels per latent-patch side (VAE factor x patch size)."""
        return self.cfg.vae_factor * self.cfg.patch_size

    def train(self, mode: bool = True):
        super().train(mode)
        if self.vae is not None:
            self.vae.eval()  # frozen, as upstream
        return self

    # -- VAE -------------------------------------------------------------------------------------
    def vae_encode(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """images [B, 3, H, W] in [-1, 1] -> scaled latents [B, C, H/8, W/8] (the images in pixel space)."""
        if self.vae is None:
            return images
        return vae_latents(self.vae, images, self.cfg.vae_scaling_factor, self.cfg.vae_sample_posterior, generator)

    def vae_decode(self, latents: Tensor) -> Tensor:
        """scaled latents [B, C, h, w] -> images [B, 3, 8h, 8w] in about [-1, 1] (not clamped)."""
        if self.vae is None:
            return latents
        return vae_images(self.vae, latents, self.cfg.vae_scaling_factor)

    # -- encode ----------------------------------------------------------------------------------
    def _check_images(self, x: Tensor) -> Tensor:
        x = prepare_images(x, name="FlexTok", multiple_of=self.latent_factor)
        if max(x.shape[-2:]) > self.cfg.image_size:
            raise ValueError(
                f"FlexTok takes images up to {self.cfg.image_size}x{self.cfg.image_size} (its position tables); "
                f"got {x.shape[-2]}x{x.shape[-1]}. Resize or crop first (zoo.media.resize_center_crop)."
            )
        return x

    @inference
    def encode(self, x: Tensor, num_tokens: int | None = None, generator: torch.Generator | None = None, *,
               target_psnr: float | None = None) -> Tokens:
        """x [B, 3, H, W] in [0, 1] -> Tokens ids [B, k] ("1d", lengths = k).

        generator: for a VAE that samples its posterior (cfg.vae_sample_posterior).
        target_psnr: per item, the fewest tokens (<= k) whose reconstruction reaches this PSNR in
            dB; the counts go to `Tokens.lengths` (ids stay [B, k]), an item that misses the target
            at k keeps k. The decoder is a stochastic flow, so the search decodes with fixed noise:
            the default steps and guidance, and the noise of `decode(tokens,
            generator=torch.Generator().manual_seed(0))` on this batch, which reproduces it. Bisection
            over k (zoo.inputs.fewest_tokens): ceil(log2 k) batched decodes, assuming quality grows with
            k as nested dropout trains it to.
        """
        x = self._check_images(x)
        k = self.check_num_tokens(num_tokens)
        if target_psnr is not None:
            target_psnr = check_target_psnr(target_psnr)
        meta = self.token_meta(image_size=list(x.shape[-2:]))
        with torch.inference_mode():
            latents = self.vae_encode(x.to(self.device) * 2 - 1, generator)
            z, _ = self.encoder(latents, k)
            ids = self.quantizer(z).ids  # [B, k]
        if target_psnr is None:
            lengths = torch.full((x.shape[0],), k, dtype=torch.long)
            return Tokens(ids=ids.cpu(), layout="1d", lengths=lengths, meta=meta)
        noise = self._initial_noise(x.shape[0], None, None, torch.Generator().manual_seed(0), meta["image_size"])

        def decode(items: Tensor, part: Tensor, n: Tensor) -> Tensor:
            return self.decode(Tokens(ids=part, layout="1d", lengths=n, meta=meta), noise=noise[items])

        lengths = fewest_tokens(x.to(self.device), ids, target_psnr, decode)
        return Tokens(ids=ids.cpu(), layout="1d", lengths=lengths.cpu(), meta={**meta, "target_psnr": target_psnr})

    # -- decode ----------------------------------------------------------------------------------
    def _keep(self, tokens: Tokens) -> Tensor:
        n = tokens.ids.shape[1]
        if n > self.cfg.num_registers:
            raise ValueError(f"FlexTok decodes at most {self.cfg.num_registers} tokens per image; got {n}.")
        keep = torch.full((tokens.ids.shape[0],), n, dtype=torch.long) if tokens.lengths is None else tokens.lengths.clamp(max=n)
        if (keep < 1).any():
            raise ValueError(f"Every item needs at least one token to decode; got lengths {keep.tolist()}.")
        return keep

    def conditioning(self, tokens: Tokens) -> Tensor:
        """Tokens -> decoder register tokens [B, R, D] (prefix kept, the rest masked)."""
        self.check_tokens(tokens)
        if tokens.layout != "1d" or tokens.ids.dim() != 2:
            raise ValueError(f"FlexTok decodes 1d tokens [B, N]; got layout {tokens.layout!r} with shape {list(tokens.ids.shape)}.")
        keep = self._keep(tokens).to(self.device)
        ids = F.pad(tokens.ids.to(self.device), (0, self.cfg.num_registers - tokens.ids.shape[1]))  # pad with id 0
        codes = self.quantizer.ids_to_codes(ids).to(self.decoder.from_latents.weight.dtype)  # [B, R, L]
        return self.decoder.condition(codes, keep)

    def velocity(self, x_t: Tensor, t: Tensor, tokens: Tokens, cond: bool = True) -> Tensor:
        """One decoder call: v(x_t, t | tokens) or, with cond=False, v(x_t, t | null condition)."""
        with torch.inference_mode():
            regs = self.conditioning(tokens)
            if not cond:
                regs = self.decoder.uncondition(regs)
            t = torch.as_tensor(t, dtype=torch.float32, device=self.device).reshape(-1).expand(x_t.shape[0])
            return self.decoder(x_t.to(self.device, regs.dtype), t, regs)

    @inference
    def decode(
        self,
        tokens: Tokens,
        steps: int | None = None,
        guidance_scale: float | Callable[[float], float] | None = None,
        apg: bool | None = None,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        image_size: tuple[int, int] | int | None = None,
        return_latents: bool = False,
    ) -> Tensor:
        """Tokens [B, k] -> images [B, 3, H, W] in [0, 1] (or the sampled latents with return_latents=True).

        steps: Euler steps (default cfg.decode_steps); guidance_scale: float or callable of t
        (1.0 = no guidance; default cfg.guidance_scale); apg: adaptive projected guidance instead of
        plain CFG (default cfg.apg); noise: initial latent [B, C, H/8, W/8], else drawn per image
        in order from `generator`; image_size: output size (default tokens.meta["image_size"]).
        """
        steps = self.cfg.decode_steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"FlexTok decode steps must be a positive integer; got {steps!r}.")
        scale = self.cfg.guidance_scale if guidance_scale is None else guidance_scale
        apg = self.cfg.apg if apg is None else apg
        with torch.inference_mode():
            regs = self.conditioning(tokens)
            b = regs.shape[0]
            x = self._initial_noise(b, tokens, noise, generator, image_size).to(regs.dtype)
            if callable(scale) or float(scale) != 1.0:
                regs2 = torch.cat([regs, self.decoder.uncondition(regs)])  # [2B, R, D]: cond | uncond

                def velocity(x: Tensor, t: float) -> tuple[Tensor, Tensor]:  # one batched call: (v_cond, v_uncond)
                    return self.decoder(torch.cat([x, x]), torch.full((2 * b,), t, device=x.device), regs2).chunk(2)

                x = euler(velocity, x, steps, Guidance(scale, apg=apg))
            else:
                x = euler(lambda x, t: self.decoder(x, torch.full((b,), t, device=x.device), regs), x, steps)
            if return_latents:
                return x
            return (self.vae_decode(x).clamp(-1, 1) + 1) / 2

    def _initial_noise(self, b, tokens, noise, generator, image_size) -> Tensor:
        c, f = self.cfg.latent_channels, self.cfg.vae_factor
        if noise is not None:
            if not isinstance(noise, Tensor) or noise.dim() != 4 or noise.shape[:2] != (b, c):
                raise ValueError(f"FlexTok noise must be a latent tensor [{b}, {c}, h, w]; got {getattr(noise, 'shape', type(noise).__name__)}.")
            if noise.shape[-1] % self.cfg.patch_size or noise.shape[-2] % self.cfg.patch_size:
                raise ValueError(f"FlexTok noise sides must be multiples of {self.cfg.patch_size}; got {list(noise.shape)}.")
            if max(noise.shape[-2:]) > self.cfg.image_size // f:
                raise ValueError(f"FlexTok noise is at most {self.cfg.image_size // f} per side; got {list(noise.shape)}.")
            return noise.to(self.device)
        size = image_size if image_size is not None else tokens.meta.get("image_size", self.cfg.image_size)
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        if h % self.latent_factor or w % self.latent_factor or max(h, w) > self.cfg.image_size:
            raise ValueError(f"FlexTok decodes to sides that are multiples of {self.latent_factor} up to {self.cfg.image_size}; got {h}x{w}.")
        # Upstream draws one [1, C, h, w] tensor per image, in order, from the generator.
        return torch.cat([torch.randn((1, c, h // f, w // f), generator=generator) for _ in range(b)]).to(self.device)

    # -- training ---------------------------------------------------------------------------------
    def flow_noise_shape(self, x: Tensor) -> tuple[int, ...]:
        """The shape of the flow's noise for images x [B, 3, H, W]: the latent [B, C, H/f, W/f]."""
        f = self.cfg.vae_factor
        return (x.shape[0], self.cfg.latent_channels, x.shape[-2] // f, x.shape[-1] // f)

    def flow_forward(self, x: Tensor, *, t: Tensor, noise: Tensor, keep: Tensor | int | None = None,
                     generator: torch.Generator | None = None, repa_target: Tensor | None = None) -> FlowOutput:
        """Training pass for train_flow_decoder.py (zoo.api.FlowOutput agreement).

        x [B, 3, H, W] in [0, 1]; t [B] in (0, 1); noise eps [B, C, H/f, W/f] (see flow_noise_shape).
        Encode all R registers, FSQ (straight-through), nested dropout keeps k registers (k drawn by
        cfg.nested_dropout_mode), condition dropout replaces all registers by the null condition with
        probability cfg.cond_dropout_prob, x_t = t eps + (1 - t) x0, velocity target eps - x0 (upstream's
        convention: t = 1 is noise). keep ([B] or an int) fixes the kept prefix lengths instead of drawing them.
        Condition dropout acts in train mode only. repa_target: the frozen REPA encoder's features of x, [B, N, repa_dim]
        (N a square) or [B, repa_dim, h, w] (zoo.train.flextok.repa_encoder); with REPA on, losses["repa"] =
        repa_weight * (1 - cos) between them and the projected decoder patch features after block repa_layer; without
        it, no REPA term.
        """
        x = self._check_images(x)
        if repa_target is not None and self.repa_projector is None:
            raise ValueError("This FlexTok has REPA off (config repa_encoder is empty), so it takes no repa_target; "
                             "build it with repa_encoder and repa_dim set.")
        with torch.no_grad():
            x0 = self.vae_encode(x.to(self.device) * 2 - 1, generator)  # [B, C, h, w]
        if tuple(noise.shape) != tuple(x0.shape):
            raise ValueError(f"FlexTok flow noise must have the latent's shape {list(x0.shape)} (flow_noise_shape); got {list(noise.shape)}.")
        t = torch.as_tensor(t, dtype=torch.float32, device=x0.device).reshape(-1)
        if t.shape[0] != x0.shape[0]:
            raise ValueError(f"FlexTok flow timesteps must be one per image ([{x0.shape[0]}]); got shape {list(t.shape)}.")
        b, r = x0.shape[0], self.cfg.num_registers
        z, _ = self.encoder(x0, r)
        q = self.quantizer(z)
        if keep is None:
            keep = self.decoder.nested_dropout.sample_keep(b, generator)
        keep = torch.as_tensor(keep, dtype=torch.long).to(x0.device).expand(b)  # [B]
        regs = self.decoder.condition(q.quantized.to(x0.dtype), keep)  # [B, R, D]
        if self.training and self.cfg.cond_dropout_prob > 0:
            drop = torch.rand((b,), generator=generator, device=generator.device if generator is not None else "cpu")
            regs = self.decoder.uncondition(regs, drop.to(x0.device) < self.cfg.cond_dropout_prob)
        eps = noise.to(x0.device, x0.dtype)
        tb = t.to(x0.dtype)[:, None, None, None]
        x_t = tb * eps + (1 - tb) * x0
        repa_on = self.repa_projector is not None and repa_target is not None
        out = self.decoder(x_t, t, regs, return_repa=self.cfg.repa_layer if repa_on else None)
        v, feats = out if repa_on else (out, None)
        losses = dict(q.losses)
        if repa_on:
            h, w = x_t.shape[-2] // self.cfg.patch_size, x_t.shape[-1] // self.cfg.patch_size
            target = align_to_grid(repa_target.to(v.device), h, w)  # [B, h*w, repa_dim]
            losses["repa"] = self.cfg.repa_weight * repa_loss(self.repa_projector(feats), target)
        tokens = Tokens(ids=q.ids.detach(), layout="1d", lengths=keep.cpu(), meta=self.token_meta(image_size=list(x.shape[-2:])))
        return FlowOutput(velocity=v, target=eps - x0, tokens=tokens, losses=losses, metrics=dict(q.metrics))

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> TokenizerOutput:
        """Training pass with its own draws: t = sigmoid(N(0, 1)), eps ~ N(0, I), then flow_forward.
        losses["flow"] = MSE(v, eps - x0); recon = the one-step estimate x0 = x_t - t v decoded, in [0, 1]."""
        x = self._check_images(x)
        shape = self.flow_noise_shape(x)
        t = torch.sigmoid(torch.randn((shape[0],), generator=generator)).to(self.device)
        eps = torch.randn(shape, generator=generator).to(self.device)
        out = self.flow_forward(x, t=t, noise=eps, generator=generator)
        loss = F.mse_loss(out.velocity.float(), out.target.float())
        with torch.no_grad():
            x0_true = eps - out.target  # the clean latent
            x_t = t[:, None, None, None] * eps + (1 - t[:, None, None, None]) * x0_true
            recon = (self.vae_decode(x_t - t[:, None, None, None] * out.velocity).clamp(-1, 1) + 1) / 2
        return TokenizerOutput(recon=recon, tokens=out.tokens, losses={"flow": loss, **out.losses}, metrics=out.metrics)
