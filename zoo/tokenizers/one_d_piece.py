"""One-D-Piece: an image tokenizer with ordered 1D tokens whose every prefix decodes.

Paper: Miwa, Sasaki, Arai, Takahashi, Yamaguchi, "One-D-Piece: Image Tokenizer Meets
Quality-Controllable Compression", arXiv 2501.10064.
Upstream: https://github.com/turingmotors/One-D-Piece (Apache-2.0), a fork of TiTok
(Yu et al., "An Image is Worth 32 Tokens for Reconstruction and Generation", arXiv 2406.07550,
https://github.com/bytedance/1d-tokenizer, Apache-2.0). The pixel decoder is the MaskGIT-VQGAN decoder
(Chang et al., arXiv 2202.04200) as packaged in the TiTok repository. Written anew from the papers and
a reading of the official code; no upstream code is copied.

Pipeline (`x: [B, 3, S, S] in [0, 1]`):
  encoder   ViT over [cls; patches; latent tokens]  -> latent z [B, N, 12] (pre-quantisation)
  quantizer l2-normalised VQ (4096 x 12)             -> ids [B, N]
  decoder   ViT over [cls; mask tokens; first k latents] -> logits over the MaskGIT-VQGAN proxy
            codebook for each patch [B, K_proxy, g, g]
  render    softmax(logits) mixes the proxy codebook softly -> [B, C_proxy, g, g] -> pixel decoder
            -> image [B, 3, S, S]
Training drops a random tail of the tokens once per batch ("Tail Token Drop"), so any prefix
`tokens[:, :k]` decodes to a coarser image.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from zoo.api import Tokenizer, TokenizerOutput, Tokens, check_target_psnr, fewest_tokens, inference, prepare_images
from zoo.blocks.maskgit_vqgan import PixelDecoder
from zoo.blocks.transformer import TransformerBlock
from zoo.quantizers.dropout import TailTokenDrop
from zoo.quantizers.vq import VectorQuantizer
from zoo.registry import FamilySpec, PretrainedCfg, Variant

PAPER = "arXiv:2501.10064"
UPSTREAM = "https://github.com/turingmotors/One-D-Piece"
UPSTREAM_COMMIT = "473665d1ec5d4f96e07f1c379166f668ee17b961"

# The official ViT sizes (TiTokEncoder / TiTokDecoder tables): name -> (width, depth, heads).
VIT_SIZES: dict[str, tuple[int, int, int]] = {
    "small": (512, 8, 8),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
}


# ----------------------------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OneDPieceConfig:
    """Defaults = One-D-Piece-S-256 (`configs/one-d-piece_s256.yaml` + the hard-coded pixel decoder)."""

    image_size: int = 256  # square input side (official: dataset.preprocessing.crop_size)
    encoder_patch_size: int = 16  # ViT patch of the encoder
    decoder_patch_size: int = 16  # decoder grid = image_size // decoder_patch_size proxy positions
    num_latent_tokens: int = 256  # N: tokens per image; any prefix 1..N decodes
    codebook_size: int = 4096
    token_dim: int = 12  # dimension of one code
    use_l2_norm: bool = True  # cosine VQ: latent and codebook rows are l2-normalised
    commitment_cost: float = 0.25  # training only
    # training only, not upstream: restart codes whose EMA usage falls below this (0 = off, as upstream); the tiny
    # CPU recipe needs it (without it 7-14 of 1024 codes per token position were in use on held-out crops)
    dead_code_threshold: float = 0.0
    encoder_width: int = 512
    encoder_depth: int = 8
    encoder_heads: int = 8
    decoder_width: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 8
    mlp_ratio: float = 4.0
    proxy_codebook_size: int = 1024  # MaskGIT-VQGAN codebook the decoder predicts logits over
    proxy_dim: int = 256  # its code dimension = the pixel decoder's input channels
    pixel_channels: int = 128  # pixel decoder base width (MaskGIT-VQGAN hidden_channels)
    pixel_channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)  # per resolution, finest first
    pixel_num_res_blocks: int = 2  # residual blocks per resolution
    pixel_norm_groups: int = 32  # GroupNorm groups of the pixel decoder (upstream: 32)

    def __post_init__(self):
        for name in ("image_size", "encoder_patch_size", "decoder_patch_size", "num_latent_tokens", "codebook_size",
                     "token_dim", "encoder_width", "encoder_depth", "encoder_heads", "decoder_width",
                     "decoder_depth", "decoder_heads", "proxy_codebook_size", "proxy_dim", "pixel_channels",
                     "pixel_num_res_blocks"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"OneDPieceConfig.{name} must be a positive integer; got {getattr(self, name)!r}.")
        for name in ("encoder_patch_size", "decoder_patch_size"):
            if self.image_size % getattr(self, name):
                raise ValueError(
                    f"OneDPieceConfig.image_size {self.image_size} must be divisible by {name} {getattr(self, name)}."
                )
        if not self.pixel_channel_mult:
            raise ValueError("OneDPieceConfig.pixel_channel_mult needs at least one entry.")
        if not self.dead_code_threshold >= 0:
            raise ValueError(f"OneDPieceConfig.dead_code_threshold must be >= 0 (0 = off); got {self.dead_code_threshold!r}.")
        g = self.pixel_norm_groups
        if isinstance(g, bool) or not isinstance(g, int) or g < 1:
            raise ValueError(f"OneDPieceConfig.pixel_norm_groups must be a positive integer; got {g!r}.")
        for m in self.pixel_channel_mult:
            if (self.pixel_channels * m) % g:
                raise ValueError(
                    f"The pixel decoder uses GroupNorm with {g} groups (pixel_norm_groups), so pixel_channels x every "
                    f"pixel_channel_mult entry must be a multiple of {g}; got {self.pixel_channels} x {m}."
                )
        out = self.decoder_grid * 2 ** (len(self.pixel_channel_mult) - 1)
        if out != self.image_size:
            raise ValueError(
                f"The pixel decoder upsamples the {self.decoder_grid}x{self.decoder_grid} proxy grid "
                f"{len(self.pixel_channel_mult) - 1} times to {out}x{out}, but image_size is {self.image_size}. "
                "Make image_size // decoder_patch_size * 2 ** (len(pixel_channel_mult) - 1) equal image_size."
            )

    @property
    def encoder_grid(self) -> int:
        return self.image_size // self.encoder_patch_size

    @property
    def decoder_grid(self) -> int:
        return self.image_size // self.decoder_patch_size


def _sized(size: str) -> dict[str, int]:
    w, d, h = VIT_SIZES[size]
    return dict(encoder_width=w, encoder_depth=d, encoder_heads=h, decoder_width=w, decoder_depth=d, decoder_heads=h)


S_256 = OneDPieceConfig()
B_256 = OneDPieceConfig(**_sized("base"))
L_256 = OneDPieceConfig(**_sized("large"))
# Trained here (embedded default): 64x64 images, 32 tokens.
TINY_64 = OneDPieceConfig(
    image_size=64, encoder_patch_size=8, decoder_patch_size=8, num_latent_tokens=32, codebook_size=1024,
    encoder_width=128, encoder_depth=2, encoder_heads=4, decoder_width=128, decoder_depth=2, decoder_heads=4,
    proxy_codebook_size=256, proxy_dim=32, pixel_channels=32, pixel_channel_mult=(1, 1, 2, 2),
)
# The smallest config, for the contract tests (32x32 images, 8 tokens).
TINY_TEST = OneDPieceConfig(
    image_size=32, encoder_patch_size=8, decoder_patch_size=8, num_latent_tokens=8, codebook_size=64,
    encoder_width=32, encoder_depth=1, encoder_heads=2, decoder_width=32, decoder_depth=1, decoder_heads=2,
    proxy_codebook_size=32, proxy_dim=16, pixel_channels=32, pixel_channel_mult=(1, 1, 1, 1),
)


# ----------------------------------------------------------------------------------------------
# ViT encoder and decoder
# ----------------------------------------------------------------------------------------------
def _vit_block(width: int, heads: int, mlp_ratio: float) -> TransformerBlock:
    """TiTok's residual block (open_clip's ResidualAttentionBlock): packed q/k/v, GELU MLP, affine LayerNorms."""
    return TransformerBlock(
        width, heads, int(width * mlp_ratio), qk_norm=False, norm_affine=True, bias=True, attn_layout="fused", mlp="gelu"
    )


class OneDPieceEncoder(nn.Module):
    """Image + learned latent tokens -> pre-quantisation latent `[B, N, token_dim]`."""

    def __init__(self, cfg: OneDPieceConfig):
        super().__init__()
        w, g, n = cfg.encoder_width, cfg.encoder_grid, cfg.num_latent_tokens
        self.width, self.num_latent_tokens = w, n
        scale = w**-0.5
        self.latent_tokens = nn.Parameter(scale * torch.randn(n, w))  # learned queries that become the tokens
        self.patch_embed = nn.Conv2d(3, w, cfg.encoder_patch_size, stride=cfg.encoder_patch_size)
        self.class_embedding = nn.Parameter(scale * torch.randn(1, w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(g * g + 1, w))
        self.latent_token_positional_embedding = nn.Parameter(scale * torch.randn(n, w))
        self.norm_pre = nn.LayerNorm(w)
        self.blocks = nn.ModuleList(
            _vit_block(w, cfg.encoder_heads, cfg.mlp_ratio) for _ in range(cfg.encoder_depth)
        )
        self.norm_post = nn.LayerNorm(w)
        self.to_token = nn.Linear(w, cfg.token_dim)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, 3, S, S] -> z: [B, N, D]."""
        b = x.shape[0]
        patches = rearrange(self.patch_embed(x), "b w gh gw -> b (gh gw) w")  # [B, g*g, W]
        h = torch.cat([self.class_embedding.expand(b, 1, -1), patches], dim=1) + self.positional_embedding
        latents = (self.latent_tokens + self.latent_token_positional_embedding).expand(b, -1, -1)  # [B, N, W]
        h = self.norm_pre(torch.cat([h, latents], dim=1))  # [B, 1 + g*g + N, W]
        for blk in self.blocks:
            h = blk(h)
        h = self.norm_post(h[:, -self.num_latent_tokens:])  # [B, N, W]
        # TiTok reads the [B, N, W] latents as [B, W, N] by a raw reshape (not a transpose) before
        # its 1x1 conv; the released weights were trained with this scramble, so it is kept.
        h = h.reshape(b, self.width, self.num_latent_tokens).transpose(1, 2)  # [B, N, W], scrambled
        return self.to_token(h)  # [B, N, D]


class OneDPieceDecoder(nn.Module):
    """First k quantised latents -> proxy-code logits `[B, K_proxy, g, g]`."""

    def __init__(self, cfg: OneDPieceConfig):
        super().__init__()
        w, g, n = cfg.decoder_width, cfg.decoder_grid, cfg.num_latent_tokens
        self.grid, self.num_latent_tokens = g, n
        scale = w**-0.5
        self.token_embed = nn.Linear(cfg.token_dim, w)
        self.class_embedding = nn.Parameter(scale * torch.randn(1, w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(g * g + 1, w))
        self.mask_token = nn.Parameter(scale * torch.randn(1, 1, w))
        self.latent_token_positional_embedding = nn.Parameter(scale * torch.randn(n, w))
        self.norm_pre = nn.LayerNorm(w)
        self.blocks = nn.ModuleList(
            _vit_block(w, cfg.decoder_heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth)
        )
        self.norm_post = nn.LayerNorm(w)
        # Per-position head: Linear(W, 2W) -> tanh -> Linear(2W, K_proxy) (1x1 convs upstream).
        self.head = nn.Sequential(nn.Linear(w, 2 * w), nn.Tanh(), nn.Linear(2 * w, cfg.proxy_codebook_size))

    def forward(self, zq: Tensor, lengths: Tensor | None = None) -> Tensor:
        """zq: [B, k, D] with k <= N; lengths: [B] valid latents per item (the rest is padding)."""
        b, k, _ = zq.shape
        g2 = self.grid * self.grid
        queries = torch.cat([self.class_embedding, self.mask_token[0].expand(g2, -1)]) + self.positional_embedding
        latents = self.token_embed(zq) + self.latent_token_positional_embedding[:k]  # [B, k, W]
        h = self.norm_pre(torch.cat([queries.expand(b, -1, -1), latents], dim=1))  # [B, 1 + g*g + k, W]
        mask = None
        if lengths is not None:
            valid = torch.arange(k, device=zq.device) < lengths.to(zq.device)[:, None]  # [B, k]
            keep = torch.ones(b, 1 + g2, dtype=torch.bool, device=zq.device)
            mask = torch.cat([keep, valid], dim=1)[:, None, None, :]  # [B, 1, 1, L]: padded latents are not keys
        for blk in self.blocks:
            h = blk(h, mask)
        logits = self.head(self.norm_post(h[:, 1 : 1 + g2]))  # [B, g*g, K]
        return rearrange(logits, "b (gh gw) k -> b k gh gw", gh=self.grid)


# ----------------------------------------------------------------------------------------------
# the tokenizer
# ----------------------------------------------------------------------------------------------
class OneDPiece(Tokenizer):
    """One-D-Piece: `[B, 3, S, S]` images in [0, 1] <-> N ordered 1D tokens; any prefix decodes."""

    family = "one_d_piece"
    fp32_modules = ("quantizer",)  # precision policy: VQ distances stay fp32
    modality = "image"
    config_class = OneDPieceConfig

    def __init__(self, cfg: OneDPieceConfig = OneDPieceConfig()):
        super().__init__(cfg)
        self.encoder = OneDPieceEncoder(cfg)
        self.quantizer = VectorQuantizer(cfg.token_dim, cfg.codebook_size, cosine=cfg.use_l2_norm,
                                         commitment_weight=cfg.commitment_cost, codebook_weight=1.0,
                                         dead_code_threshold=cfg.dead_code_threshold)
        self.tail_drop = TailTokenDrop()  # training only: keep the first k ~ U{1..N} latents per batch
        self.decoder = OneDPieceDecoder(cfg)
        self.proxy_codebook = nn.Parameter(torch.randn(cfg.proxy_codebook_size, cfg.proxy_dim))
        self.pixel_decoder = PixelDecoder(cfg.proxy_dim, cfg.pixel_channels, cfg.pixel_channel_mult,
                                          cfg.pixel_num_res_blocks, norm_groups=cfg.pixel_norm_groups)
        self.continuous = False  # training stage switch (set_continuous); not part of the weights

    # -- properties ----------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    @property
    def token_rate(self) -> float:
        return float(self.cfg.num_latent_tokens)

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) that encode takes; the CLI resizes and centre-crops image files to it."""
        return (self.cfg.image_size, self.cfg.image_size)

    @property
    def max_tokens(self) -> int:
        """Any prefix 1..max_tokens decodes (`zoo eval` sweeps it)."""
        return self.cfg.num_latent_tokens

    @property
    def num_latent_tokens(self) -> int:
        return self.cfg.num_latent_tokens

    def example_input(self, batch_size: int = 2, generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
        s = self.cfg.image_size
        return torch.rand(batch_size, 3, s, s, generator=generator), {}

    def set_continuous(self, flag: bool) -> None:
        """Stage switch for training: True lets the decoder read the unquantised (l2-normalised) latents
        while the quantizer still runs on them (usage statistics, dead-code restarts, its losses), a
        warm-up that seeds the codebook with real latents before the tokens become discrete."""
        self.continuous = bool(flag)

    # -- the stages (tensors in, tensors out; no input checks) -------------------------------------
    def encode_latent(self, x: Tensor) -> Tensor:
        """x: [B, 3, S, S] in [0, 1] -> pre-quantisation latent z: [B, N, D]."""
        return self.encoder(x)

    def quantize(self, z: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """z: [B, N, D] -> (z_q [B, N, D], ids [B, N], losses). z_q is the (normalised) code,
        straight-through when z requires grad."""
        q = self.quantizer(z.float())  # the lookup runs in fp32 (as upstream)
        return q.quantized.to(z.dtype), q.ids, q.losses

    def ids_to_latent(self, ids: Tensor) -> Tensor:
        """ids: [B, k] -> quantised latent [B, k, D] (normalised codebook rows)."""
        return self.quantizer.ids_to_quantized(ids)

    def decode_logits(self, zq: Tensor, lengths: Tensor | None = None) -> Tensor:
        """zq: [B, k, D] -> proxy-code logits [B, K_proxy, g, g]; `lengths` masks a padded tail per item."""
        return self.decoder(zq, lengths)

    def render(self, logits: Tensor) -> Tensor:
        """Proxy logits [B, K_proxy, g, g] -> soft proxy embedding -> image [B, 3, S, S], unclamped."""
        return self.pixel_decoder(self.soft_proxy_embedding(logits))

    def soft_proxy_embedding(self, logits: Tensor) -> Tensor:
        """[B, K_proxy, g, g] -> softmax-weighted mix of the proxy codebook [B, C_proxy, g, g]."""
        return torch.einsum("bkhw,kc->bchw", logits.softmax(dim=1), self.proxy_codebook)

    # -- the contract -------------------------------------------------------------------------
    @inference
    def encode(self, x: Tensor, *, num_tokens: int | None = None, target_psnr: float | None = None) -> Tokens:
        """x: [B, 3, S, S] in [0, 1] -> Tokens ids [B, k] (layout "1d", ordered coarse to fine).

        num_tokens: keep the first k (1..N) tokens; default all N.
        target_psnr: per item, the fewest tokens (<= k) whose clamped reconstruction reaches this
            PSNR in dB, found by bisection over k with batched decoding; the counts go to
            `Tokens.lengths` (ids stay [B, k]). An item that misses the target even at k keeps k.
            Bisection assumes quality grows with k, which Tail Token Drop training aims for.
        """
        cfg = self.cfg
        x = prepare_images(x, name="OneDPiece", size=(cfg.image_size, cfg.image_size))
        x = x.to(self.device, self.encoder.patch_embed.weight.dtype)  # the model's device and dtype
        k = self._check_num_tokens(num_tokens)
        if target_psnr is not None:
            target_psnr = check_target_psnr(target_psnr)
        with torch.inference_mode():
            _, ids, _ = self.quantize(self.encode_latent(x))
            ids = ids[:, :k]
            meta = self.token_meta(image_size=[cfg.image_size, cfg.image_size], num_latent_tokens=cfg.num_latent_tokens)
            if target_psnr is None:
                return Tokens(ids=ids, layout="1d", meta=meta)
            lengths = fewest_tokens(x, ids, target_psnr, lambda _, part, n: self._decode_ids(part, n).clamp(0, 1))
        return Tokens(ids=ids, layout="1d", lengths=lengths, meta={**meta, "target_psnr": target_psnr})

    @inference
    def decode(self, tokens: Tokens, *, clamp: bool = True) -> Tensor:
        """Tokens ids [B, k] (any 1 <= k <= N; per-item `lengths` honoured) -> images [B, 3, S, S].

        clamp: clamp to [0, 1] (the official scripts do; the model itself is unclamped).
        """
        self.check_tokens(tokens)
        if tokens.layout != "1d" or tokens.ids.dim() != 2:
            raise ValueError(
                f"OneDPiece decodes 1D tokens: layout '1d' with ids [B, k]; got layout {tokens.layout!r} with ids "
                f"shape {list(tokens.ids.shape)}. Official [B, 1, N] ids become ours with ids[:, 0]."
            )
        made_for = {"num_latent_tokens": self.cfg.num_latent_tokens, "image_size": [self.cfg.image_size] * 2}
        for key, ours in made_for.items():
            if key in tokens.meta and tokens.meta[key] != ours:
                raise ValueError(
                    f"These tokens come from a One-D-Piece with {key}={tokens.meta[key]} "
                    f"(variant {tokens.meta.get('variant')!r}); this model has {key}={ours}. Decode them with the "
                    "model that made them."
                )
        ids = tokens.ids.to(self.device)
        self._check_num_tokens(ids.shape[1])
        lengths = tokens.lengths
        if lengths is not None:
            lengths = lengths.to(self.device)
            if int(lengths.min()) < 1 or int(lengths.max()) > ids.shape[1]:
                raise ValueError(
                    f"Tokens.lengths must lie in [1, {ids.shape[1]}] (the ids' length); got "
                    f"[{int(lengths.min())}, {int(lengths.max())}]."
                )
        with torch.inference_mode():
            image = self._decode_ids(ids, lengths)
        return image.clamp(0, 1) if clamp else image

    def forward(self, x: Tensor, generator: torch.Generator | None = None, proxy_ids: Tensor | None = None,
                proxy_decoder: Callable[[Tensor], Tensor] | None = None, render: bool = True) -> TokenizerOutput:
        """Training / evaluation pass: x [B, 3, S, S] in [0, 1] -> recon (unclamped), tokens, losses.

        In training mode, Tail Token Drop keeps the first `k ~ U{1..N}` latents (one draw per batch,
        as upstream; from `generator` when given) before decoding; `metrics["num_tokens"]` records k.
        proxy_ids: [B, g, g] codes of a proxy teacher (stage 1 of the TiTok recipe): adds
        `losses["proxy"]`, the cross-entropy of the decoder's proxy logits against them, and
        `losses["proxy_render"]`, the L2 between x and the pixel decoder's rendering of the teacher's codes
        themselves (it trains only the proxy codebook and the pixel decoder: a teacher decoder for a teacher
        that has none; the training program weights each term by its stage weight).
        proxy_decoder: the teacher's own decoder, proxy-code probabilities [B, K_proxy, g, g] -> images (e.g.
        `PatchKMeansTeacher.decode`): adds `losses["proxy_decode"]`, the L2 between x and that decoder applied to
        the softmax of this model's proxy logits (a pixel-space signal for the encoder and decoder whose logits
        keep the teacher's meaning; it needs no proxy_ids).
        render: False skips the pixel decoder on the predicted logits (`recon` is None): a proxy-code stage
        that weights no pixel loss does not pay for it (upstream's stage-1 model has no pixel decoder).
        """
        z = self.encode_latent(x)
        zq, ids, losses = self.quantize(z)
        if self.continuous and self.training:  # warm-up stage: the decoder reads the latents unquantised
            zq = F.normalize(z, dim=-1) if self.cfg.use_l2_norm else z
        zq = self.tail_drop(zq, generator=generator).x  # identity in eval mode
        logits = self.decode_logits(zq)  # [B, K_proxy, g, g]
        if proxy_ids is not None:
            if proxy_ids.shape != (logits.shape[0], *logits.shape[2:]):
                raise ValueError(f"proxy_ids must be [B, g, g] = {[logits.shape[0], *logits.shape[2:]]} (one proxy "
                                 f"code per decoder position); got {list(proxy_ids.shape)}.")
            taught = self.pixel_decoder(rearrange(self.proxy_codebook[proxy_ids], "b h w c -> b c h w"))
            losses = {**losses, "proxy": F.cross_entropy(logits.float(), proxy_ids),
                      "proxy_render": F.mse_loss(taught.float(), x.float())}
        if proxy_decoder is not None:
            losses = {**losses, "proxy_decode": F.mse_loss(proxy_decoder(logits.float().softmax(dim=1)), x.float())}
        recon = self.render(logits) if render else None
        tokens = Tokens(ids=ids.detach(), layout="1d", meta=self.token_meta(image_size=list(x.shape[-2:])))
        return TokenizerOutput(recon=recon, tokens=tokens, losses=losses,
                               metrics={"num_tokens": torch.tensor(float(zq.shape[1]))})

    # -- helpers ------------------------------------------------------------------------------
    def _check_num_tokens(self, k: int | None) -> int:
        n = self.cfg.num_latent_tokens
        if k is None:
            return n
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
            raise ValueError(f"OneDPiece decodes 1 to {n} tokens per image; got {k!r}.")
        return k

    def _decode_ids(self, ids: Tensor, lengths: Tensor | None = None) -> Tensor:
        """ids [B, k] -> unclamped images; items with a shorter `lengths` see only their prefix."""
        if lengths is not None and bool((lengths == ids.shape[1]).all()):
            lengths = None
        elif lengths is not None and bool((lengths == lengths[0]).all()):
            ids, lengths = ids[:, : int(lengths[0])], None  # one common prefix: cut instead of masking
        return self.render(self.decode_logits(self.ids_to_latent(ids), lengths))


# ----------------------------------------------------------------------------------------------
# official checkpoints
# ----------------------------------------------------------------------------------------------
# Keys of official checkpoints that inference does not use and the converter drops. The released
# stage-2 files (`pytorch_model.bin`, also the EMA copies) hold none: every key is an inference key.
TRAINING_ONLY_KEYS: tuple[str, ...] = ()

_BLOCK_RENAMES = (
    ("ln_1.", "norm1."),
    ("ln_2.", "norm2."),
    ("attn.in_proj_weight", "attn.qkv.weight"),
    ("attn.in_proj_bias", "attn.qkv.bias"),
    ("attn.out_proj.", "attn.proj."),
    ("mlp.c_fc.", "mlp.fc1."),
    ("mlp.c_proj.", "mlp.fc2."),
)
_PLAIN_RENAMES = {
    "encoder.ln_pre.": "encoder.norm_pre.",
    "encoder.ln_post.": "encoder.norm_post.",
    "encoder.conv_out.": "encoder.to_token.",
    "decoder.ln_pre.": "decoder.norm_pre.",
    "decoder.ln_post.": "decoder.norm_post.",
    "decoder.decoder_embed.": "decoder.token_embed.",
    "decoder.ffn.": "decoder.head.",
}
_WHOLE_RENAMES = {
    "latent_tokens": "encoder.latent_tokens",  # part of the encoder here, so freezing the encoder fixes them
    "quantize.embedding.weight": "quantizer.codebook",
    "pixel_quantize.embedding.weight": "proxy_codebook",
}
_TRANSFORMER = re.compile(r"^(encoder|decoder)\.transformer\.(\d+)\.(.*)$")
_POINTWISE_CONVS = re.compile(r"^(encoder\.to_token|decoder\.head\.[02])\.weight$")


def remap_state_dict(state_dict: Mapping[str, Tensor], cfg: OneDPieceConfig | None = None) -> dict[str, Tensor]:
    """Official One-D-Piece keys (plain `OneDPiece.state_dict()`, no prefix) -> ours.

    Renames: `*.transformer.i.{ln_1,ln_2,attn.in_proj_*,attn.out_proj,mlp.c_fc,mlp.c_proj}` ->
    `*.blocks.i.{norm1,norm2,attn.qkv,attn.proj,mlp.fc1,mlp.fc2}`; `ln_pre/ln_post` -> `norm_pre/norm_post`;
    `encoder.conv_out` -> `encoder.to_token`, `decoder.decoder_embed` -> `decoder.token_embed`,
    `decoder.ffn` -> `decoder.head` (1x1 conv weights [O, I, 1, 1] -> linear [O, I]);
    `quantize.embedding.weight` -> `quantizer.codebook`; `pixel_quantize.embedding.weight` -> `proxy_codebook`;
    `latent_tokens` -> `encoder.latent_tokens`; the embeddings and `pixel_decoder.*` keep their names. The shared quantizer's
    bookkeeping buffers, absent upstream, are added: `quantizer.cluster_size` (ones) and
    `quantizer.initialized` (True). Keys in TRAINING_ONLY_KEYS are dropped; any other key passes
    through unchanged, so strict loading names it.
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key in TRAINING_ONLY_KEYS:
            continue
        new = _WHOLE_RENAMES.get(key, key)
        m = _TRANSFORMER.match(new)
        if m:
            rest = m.group(3)
            for old, repl in _BLOCK_RENAMES:
                if rest.startswith(old):
                    rest = repl + rest[len(old):]
                    break
            new = f"{m.group(1)}.blocks.{m.group(2)}.{rest}"
        else:
            for old, repl in _PLAIN_RENAMES.items():
                if new.startswith(old):
                    new = repl + new[len(old):]
                    break
        if _POINTWISE_CONVS.match(new) and value.dim() == 4 and value.shape[-2:] == (1, 1):
            value = value.reshape(value.shape[0], value.shape[1])  # [O, I, 1, 1] -> [O, I]
        out[new] = value
    codebook = out.get("quantizer.codebook")
    if codebook is not None:
        out.setdefault("quantizer.cluster_size", torch.ones(codebook.shape[0], device=codebook.device))
        out.setdefault("quantizer.initialized", torch.tensor(True, device=codebook.device))
    return out


def _vit_size(name: str | None, table: Mapping[str, Any] | None, which: str) -> tuple[int, int, int] | None:
    if name is None:
        return None
    if table and name in table:
        t = table[name]
        return int(t["width"]), int(t["num_layers"]), int(t["num_heads"])
    if name in VIT_SIZES:
        return VIT_SIZES[name]
    known = sorted(set(VIT_SIZES) | set(table or {}))
    raise ValueError(f"Unknown One-D-Piece ViT size {name!r} for the {which}; known sizes: {known}.")


def _count_blocks(state_dict: Mapping[str, Tensor], prefix: str) -> int:
    pat = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    return len({int(m.group(1)) for k in state_dict if (m := pat.match(k))})


def _shape(state_dict: Mapping[str, Tensor], key: str) -> tuple[int, ...] | None:
    v = state_dict.get(key)
    return None if v is None else tuple(v.shape)


def from_official_config(config: Mapping[str, Any] | None, state_dict: Mapping[str, Tensor] | None = None,
                         metadata: Mapping[str, str] | None = None) -> OneDPieceConfig:
    """Official config -> OneDPieceConfig.

    `config` may be the official OmegaConf YAML (`configs/one-d-piece_*.yaml`, as a dict), the
    config.json that the hub mixin writes (the same tree), a parity fixture's config.json (the same
    tree plus `patched_model_size_table`, `model.vq_model.pixel_codebook_size` and
    `model.vq_model.pixel_decoder`), or None: then every size is read from the state dict's shapes
    (heads from the official width -> heads table). The pixel decoder, hard-coded upstream, is read
    from the config when given, else from the state dict, else the released MaskGIT-VQGAN values.
    """
    sd = state_dict or {}
    fields: dict[str, Any] = {}
    if config is not None:
        if not isinstance(config, Mapping):
            raise TypeError(f"The One-D-Piece config must be a mapping (parsed YAML/JSON); got {type(config).__name__}.")
        vq = (config.get("model") or {}).get("vq_model")
        if not isinstance(vq, Mapping):
            raise ValueError(
                "This is not a One-D-Piece / TiTok config: it has no model.vq_model section "
                f"(top-level keys: {sorted(config)})."
            )
        if vq.get("finetune_decoder", True) is False:
            raise ValueError(
                "This config is a stage-1 TiTok/One-D-Piece model (finetune_decoder: false), which has no pixel "
                "decoder and returns proxy logits only; zoo loads the released stage-2 layout (finetune_decoder: true)."
            )
        table = config.get("patched_model_size_table")
        enc = _vit_size(vq.get("vit_enc_model_size"), table, "encoder")
        dec = _vit_size(vq.get("vit_dec_model_size"), table, "decoder")
        crop = ((config.get("dataset") or {}).get("preprocessing") or {}).get("crop_size")
        mlp = {float(t.get("mlp_ratio", 4.0)) for t in (table or {}).values()}
        for key, name in (("num_latent_tokens", "num_latent_tokens"), ("codebook_size", "codebook_size"),
                          ("token_size", "token_dim"), ("use_l2_norm", "use_l2_norm"),
                          ("commitment_cost", "commitment_cost"), ("vit_enc_patch_size", "encoder_patch_size"),
                          ("vit_dec_patch_size", "decoder_patch_size"), ("pixel_codebook_size", "proxy_codebook_size")):
            if key in vq:
                fields[name] = vq[key]
        if crop is not None:
            fields["image_size"] = int(crop)
        if enc:
            fields.update(encoder_width=enc[0], encoder_depth=enc[1], encoder_heads=enc[2])
        if dec:
            fields.update(decoder_width=dec[0], decoder_depth=dec[1], decoder_heads=dec[2])
        if len(mlp) == 1:
            fields["mlp_ratio"] = mlp.pop()
        pix = vq.get("pixel_decoder")
        if isinstance(pix, Mapping):
            mult = tuple(int(m) for m in pix.get("channel_mult", (1, 1, 2, 2, 4)))
            if int(pix.get("num_resolutions", len(mult))) != len(mult):
                raise ValueError(
                    f"pixel_decoder.num_resolutions ({pix['num_resolutions']}) must equal len(channel_mult) ({len(mult)})."
                )
            if int(pix.get("num_channels", 3)) != 3:
                raise ValueError(f"One-D-Piece decodes RGB images; pixel_decoder.num_channels is {pix['num_channels']}.")
            fields.update(pixel_channel_mult=mult)
            for key, name in (("hidden_channels", "pixel_channels"), ("num_res_blocks", "pixel_num_res_blocks"),
                              ("z_channels", "proxy_dim")):
                if key in pix:
                    fields[name] = int(pix[key])
    _fill_from_state_dict(fields, sd)
    try:
        return OneDPieceConfig(**fields)
    except TypeError as e:  # pragma: no cover - programming error guard
        raise ValueError(f"Could not build a OneDPieceConfig from the official config ({e}).") from e


def _fill_from_state_dict(fields: dict[str, Any], sd: Mapping[str, Tensor]) -> None:
    """Fill every size the config did not give from the checkpoint's shapes."""
    if not sd:
        return
    lt = _shape(sd, "latent_tokens")
    if lt:
        fields.setdefault("num_latent_tokens", lt[0])
    cb = _shape(sd, "quantize.embedding.weight")
    if cb:
        fields.setdefault("codebook_size", cb[0])
        fields.setdefault("token_dim", cb[1])
    pe = _shape(sd, "encoder.patch_embed.weight")
    pos = _shape(sd, "encoder.positional_embedding")
    if pe:
        fields.setdefault("encoder_patch_size", pe[-1])
        if pos:
            fields.setdefault("image_size", math.isqrt(pos[0] - 1) * pe[-1])
    for side in ("encoder", "decoder"):
        if f"{side}_width" in fields:
            continue
        w = _shape(sd, f"{side}.ln_pre.weight")
        if not w:
            continue
        depth = _count_blocks(sd, f"{side}.transformer")
        if w[0] not in {s[0] for s in VIT_SIZES.values()}:
            raise ValueError(
                f"The checkpoint's {side} width is {w[0]}, not an official One-D-Piece size "
                f"({sorted(s[0] for s in VIT_SIZES.values())}), so its number of heads cannot be read from the "
                "weights; pass the official config (model.vq_model.vit_*_model_size) as well."
            )
        heads = next(h for (ww, _, h) in VIT_SIZES.values() if ww == w[0])
        fields.update({f"{side}_width": w[0], f"{side}_depth": depth, f"{side}_heads": heads})
    dpos = _shape(sd, "decoder.positional_embedding")
    if dpos and "image_size" in fields and "decoder_patch_size" not in fields:
        fields["decoder_patch_size"] = fields["image_size"] // math.isqrt(dpos[0] - 1)
    pq = _shape(sd, "pixel_quantize.embedding.weight")
    if pq:
        fields.setdefault("proxy_codebook_size", pq[0])
        fields.setdefault("proxy_dim", pq[1])
    out = _shape(sd, "pixel_decoder.norm_out.weight")
    levels = {int(m.group(1)) for k in sd if (m := re.match(r"^pixel_decoder\.up\.(\d+)\.", k))}
    if out and levels and "pixel_channel_mult" not in fields:
        mult = []
        for i in range(max(levels) + 1):
            c = _shape(sd, f"pixel_decoder.up.{i}.block.0.conv2.weight")
            mult.append(c[0] // out[0] if c else 1)
        fields["pixel_channel_mult"] = tuple(mult)
        fields.setdefault("pixel_channels", out[0])
        fields.setdefault("pixel_num_res_blocks", _count_blocks(sd, "pixel_decoder.mid"))


# ----------------------------------------------------------------------------------------------
# catalogue
# ----------------------------------------------------------------------------------------------
def _released(size: str, cfg: OneDPieceConfig, params: str, revision: str | None = None) -> Variant:
    return Variant(
        name=f"one-d-piece-{size.lower()}-256",
        config=cfg,
        pretrained=PretrainedCfg(
            hub_id=f"turing-motors/One-D-Piece-{size}-256",
            filename="pytorch_model.bin",
            revision=revision,
            license="apache-2.0",
            paper=PAPER,
        ),
        description=(f"One-D-Piece-{size}-256 (Turing Inc.): 256x256 images -> 1 to 256 ordered tokens, "
                     f"codebook 4096, ViT-{size} encoder/decoder + MaskGIT-VQGAN pixel decoder, {params} parameters."),
    )


VARIANTS: tuple[Variant, ...] = (
    _released("S", S_256, "83.9 M", revision="250e95dcb0b29fcfeef4396d1788a9dbd18ca455"),  # a snapshot seen in public code
    _released("B", B_256, "205.3 M"),
    _released("L", L_256, "641.7 M"),
    Variant(
        name="one-d-piece-tiny-64",
        config=TINY_64,
        embedded="one_d_piece/tiny-64",
        official=False,
        description="A tiny One-D-Piece trained here on CPU: 64x64 images -> 1 to 32 tokens, codebook 1024.",
    ),
)


FAMILY = FamilySpec(
    name="one_d_piece",
    tokenizer=OneDPiece,
    config=OneDPieceConfig,
    variants=VARIANTS,
    remap_state_dict=remap_state_dict,
    from_official_config=from_official_config,
    paper=PAPER,
    upstream=UPSTREAM,
    description="Ordered 1D image tokens with Tail Token Drop: any prefix decodes (quality-controllable compression).",
    tiny_config=TINY_TEST,
)
