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

from dataclasses import dataclass
import torch
from einops import rearrange
from torch import Tensor, nn

from zoo.api import Tokenizer, TokenizerOutput, Tokens, inference
from zoo.inputs import check_target_psnr, fewest_tokens, prepare_images
from zoo.blocks.maskgit_vqgan import PixelDecoder
from zoo.blocks.resnet import check_group_norm_widths
from zoo.blocks.transformer import TransformerBlock
from zoo.quantizers.dropout import TailTokenDrop
from zoo.quantizers.vq import VectorQuantizer

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
    encoder_width: int = 512  # encoder ViT (width, depth, heads): VIT_SIZES["small"] in One-D-Piece-S
    encoder_depth: int = 8
    encoder_heads: int = 8
    decoder_width: int = 512  # decoder ViT likewise (the released variants pair equal sizes)
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
        check_group_norm_widths(self.pixel_channels, self.pixel_channel_mult, g, "OneDPieceConfig: every pixel "
                                "decoder width (pixel_channels x pixel_channel_mult; groups: pixel_norm_groups)")
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


# ----------------------------------------------------------------------------------------------
# ViT encoder and decoder
# ----------------------------------------------------------------------------------------------
class _TiTokViT(nn.Module):
    """What TiTok's encoder and decoder share, at width w: learned embeddings initialised N(0, 1/w), positions
    for [cls; g*g grid], and a stack of TiTok's residual blocks (open_clip's ResidualAttentionBlock: packed
    q/k/v, GELU MLP, affine LayerNorms) between two LayerNorms. Each subclass builds its parts in the
    official order, so a seeded model draws the same initial weights."""

    def __init__(self, width: int, grid: int, num_latent_tokens: int):
        super().__init__()
        self.width, self.grid, self.num_latent_tokens = width, grid, num_latent_tokens

    def _embedding(self, *shape: int) -> nn.Parameter:
        return nn.Parameter(self.width**-0.5 * torch.randn(*shape))

    def _build_grid_positions(self) -> None:
        self.class_embedding = self._embedding(1, self.width)
        self.positional_embedding = self._embedding(self.grid * self.grid + 1, self.width)  # [cls; g*g]

    def _build_stack(self, depth: int, heads: int, mlp_ratio: float) -> None:
        w = self.width
        self.norm_pre = nn.LayerNorm(w)
        self.blocks = nn.ModuleList(
            TransformerBlock(w, heads, int(w * mlp_ratio), qk_norm=False, norm_affine=True, bias=True,
                             attn_layout="fused", mlp="gelu")
            for _ in range(depth)
        )
        self.norm_post = nn.LayerNorm(w)


class OneDPieceEncoder(_TiTokViT):
    """Image + learned latent tokens -> pre-quantisation latent `[B, N, token_dim]`."""

    def __init__(self, cfg: OneDPieceConfig):
        super().__init__(cfg.encoder_width, cfg.encoder_grid, cfg.num_latent_tokens)
        w, n = self.width, self.num_latent_tokens
        self.latent_tokens = self._embedding(n, w)  # learned queries that become the tokens
        self.patch_embed = nn.Conv2d(3, w, cfg.encoder_patch_size, stride=cfg.encoder_patch_size)
        self._build_grid_positions()
        self.latent_token_positional_embedding = self._embedding(n, w)
        self._build_stack(cfg.encoder_depth, cfg.encoder_heads, cfg.mlp_ratio)
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


class OneDPieceDecoder(_TiTokViT):
    """First k quantised latents -> proxy-code logits `[B, K_proxy, g, g]`."""

    def __init__(self, cfg: OneDPieceConfig):
        super().__init__(cfg.decoder_width, cfg.decoder_grid, cfg.num_latent_tokens)
        w = self.width
        self.token_embed = nn.Linear(cfg.token_dim, w)
        self._build_grid_positions()
        self.mask_token = self._embedding(1, 1, w)
        self.latent_token_positional_embedding = self._embedding(self.num_latent_tokens, w)
        self._build_stack(cfg.decoder_depth, cfg.decoder_heads, cfg.mlp_ratio)
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
    # precision policy: VQ distances and the projection into the codebook space stay fp32
    # (bf16 there flips near-tie codes: 96.9% ids equal to fp32 on real photos, 99.4% with it fp32)
    fp32_modules = ("quantizer", "encoder.to_token")
    batch_split = {"encode": (), "decode": ()}  # items are independent: big batches run in chunks, exactly
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

    # -- properties ----------------------------------------------------------------------------

    @property
    def max_tokens(self) -> int:
        """N: any prefix 1..N decodes (`zoo eval` sweeps it)."""
        return self.cfg.num_latent_tokens

    num_latent_tokens = max_tokens  # TiTok's name for N

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
        k = self.check_num_tokens(num_tokens)
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
        self.check_num_tokens(ids.shape[1])
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

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> TokenizerOutput:
        """Training / evaluation pass: x [B, 3, S, S] in [0, 1] -> recon (unclamped), tokens, losses.

        In training mode, Tail Token Drop keeps the first `k ~ U{1..N}` latents (one draw per batch,
        as upstream; from `generator` when given) before decoding; `metrics["num_tokens"]` records k.
        The stage-1 passes (proxy codes, continuous warm-up) are zoo.train.one_d_piece's, made of the same parts.
        """
        zq, ids, losses = self.quantize(self.encode_latent(x))
        zq = self.tail_drop(zq, generator=generator).x  # identity in eval mode
        logits = self.decode_logits(zq)  # [B, K_proxy, g, g]
        return self.forward_output(x, ids, zq.shape[1], losses, self.render(logits))

    def forward_output(self, x: Tensor, ids: Tensor, num_tokens: int, losses: dict[str, Tensor],
                       recon: Tensor | None) -> TokenizerOutput:
        """What forward returns (also for the training passes): ids [B, N] of images x, `num_tokens` decoded."""
        tokens = Tokens(ids=ids.detach(), layout="1d", meta=self.token_meta(image_size=list(x.shape[-2:])))
        return TokenizerOutput(recon=recon, tokens=tokens, losses=losses,
                               metrics={"num_tokens": torch.tensor(float(num_tokens))})

    # -- helpers ------------------------------------------------------------------------------
    def _decode_ids(self, ids: Tensor, lengths: Tensor | None = None) -> Tensor:
        """ids [B, k] -> unclamped images; items with a shorter `lengths` see only their prefix."""
        if lengths is not None and bool((lengths == ids.shape[1]).all()):
            lengths = None
        elif lengths is not None and bool((lengths == lengths[0]).all()):
            ids, lengths = ids[:, : int(lengths[0])], None  # one common prefix: cut instead of masking
        return self.render(self.decode_logits(self.ids_to_latent(ids), lengths))
