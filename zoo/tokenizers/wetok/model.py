"""WeTok: a MAGVIT-2 style convolutional image tokenizer with group-wise lookup-free quantization.

Paper: Zhuang et al., "WeTok: Powerful Discrete Tokenization for High-Fidelity Visual Reconstruction",
arXiv 2508.05599. Upstream: https://github.com/zhuangshaobin/WeTok (commit caa2ad7e709c, Apache-2.0), itself
derived from Open-MAGVIT2 / SEED-Voken. Weights: hub repo GrayShine/WeTok (`<folder>/WeTok.ckpt`, Lightning
pickles holding `{"state_dict": ...}` with EMA twins under `model_ema.*`). Written anew from the paper and a
reading of the upstream code; see models/wetok/NOTES.md for every deviation. This module: the config
and the tokenizer; `convert.py` reads the official checkpoints, `variants.py` is the catalogue.

    x [B, 3, H, W] in [0, 1] --(2x-1)--> encoder --> h [B, G*d, H/f, W/f]
      --GQ (sign per channel, d bits per group)--> ids [B, G, H/f, W/f] in [0, 2^d)
      --> codes in {-1, +1} --> decoder (adaptive group norm styled by the codes; the generative
          decoder also takes a noise map of the codes' shape) --> image [B, 3, H, W] in [0, 1]

Group-wise LFQ ("GQ") never builds the joint vocabulary of 2^(G*d) codes: each spatial token is G
sub-tokens of d bits. The first channel of a group is the least significant bit of its id.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from zoo.api import Tokenizer, TokenizerOutput, Tokens, inference
from zoo.inputs import check_finite, prepare_images
from zoo.blocks.resnet import ResBlock, check_group_norm_widths
from zoo.quantizers.lfq import LFQ

PAPER = "arXiv:2508.05599"
UPSTREAM = "https://github.com/zhuangshaobin/WeTok"
HUB_ID = "GrayShine/WeTok"
NUM_GROUPS_NORM = 32  # every GroupNorm of the official model uses 32 groups
NORM_EPS = 1e-6


# ----------------------------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeTokConfig:
    """Defaults: the released ImageNet downsample-16 model (wetok-imagenet-f16)."""

    ch: int = 256  # base width of encoder and decoder
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)  # width multipliers per level; f = 2^(len-1)
    num_res_blocks: int = 4  # residual blocks per level (and in the middle)
    z_channels: int = 32  # latent channels = num_groups * bits_per_group
    num_groups: int = 4  # G: sub-tokens per spatial position (LFQ groups)
    bits_per_group: int = 8  # d: bits per sub-token; each group has a 2^d vocabulary
    generative_decoder: bool = False  # GD: the decoder also takes a noise map (compratio768)
    image_size: int = 256  # training resolution; any size divisible by f works at inference
    # training only: LFQ losses (MAGVIT-2 entropy penalty per group, commitment); values of the released configs
    entropy_weight: float = 0.1  # codebook_weight of the official loss config
    commitment_weight: float = 0.25  # commit_weight
    entropy_temperature: float = 0.01
    sample_entropy_weight: float = 1.0  # sample_minimization_weight
    codebook_entropy_weight: float = 1.0  # batch_maximization_weight

    def __post_init__(self):
        if not self.ch_mult or any(int(m) < 1 for m in self.ch_mult):
            raise ValueError(f"WeTokConfig.ch_mult needs one or more positive multipliers; got {self.ch_mult}.")
        check_group_norm_widths(self.ch, self.ch_mult, NUM_GROUPS_NORM, "WeTokConfig: every width ch x ch_mult")
        if self.num_res_blocks < 1:
            raise ValueError(f"WeTokConfig.num_res_blocks must be >= 1; got {self.num_res_blocks}.")
        if self.num_groups < 1 or self.bits_per_group < 1:
            raise ValueError(
                f"WeTokConfig needs num_groups >= 1 and bits_per_group >= 1; got {self.num_groups}, {self.bits_per_group}."
            )
        if self.z_channels != self.num_groups * self.bits_per_group:
            raise ValueError(
                f"WeTokConfig.z_channels ({self.z_channels}) must equal num_groups * bits_per_group "
                f"({self.num_groups} * {self.bits_per_group} = {self.num_groups * self.bits_per_group})."
            )
        if self.image_size % self.downsample_factor:
            raise ValueError(
                f"WeTokConfig.image_size ({self.image_size}) must be divisible by the downsampling factor "
                f"{self.downsample_factor}."
            )

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


# ----------------------------------------------------------------------------------------------
# blocks (family-specific: MAGVIT-2 conv stack as WeTok ships it)
# ----------------------------------------------------------------------------------------------
def _group_norm(channels: int, affine: bool = True) -> nn.GroupNorm:
    return nn.GroupNorm(NUM_GROUPS_NORM, channels, eps=NORM_EPS, affine=affine)


def _res_block(in_ch: int, out_ch: int) -> ResBlock:
    """GN -> SiLU -> conv3x3 -> GN -> SiLU -> conv3x3, plus the input (1x1 conv when widths differ); no conv
    biases, as upstream."""
    return ResBlock(in_ch, out_ch, num_groups=NUM_GROUPS_NORM, eps=NORM_EPS)


class Upsample(nn.Module):
    """conv3x3 C -> 4C, then depth-to-space in DCR order (the 2x2 offsets are the *outer* channel
    factor). This is not `pixel_shuffle`, whose channel order is (C, 2, 2)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, 4 * ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)  # [B, 4C, H, W]
        return rearrange(x, "b (i j c) h w -> b c (h i) (w j)", i=2, j=2)  # [B, C, 2H, 2W]


class AdaptiveGroupNorm(nn.Module):
    """GroupNorm without affine, then a per-channel scale and shift predicted from the statistics of
    the quantized map: scale = gamma(std_hw(q)), shift = beta(mean_hw(q)). The statistics are
    computed once per decode (see `Decoder.style`) and passed in as `[B, z]` vectors."""

    def __init__(self, z_channels: int, ch: int):
        super().__init__()
        self.gn = _group_norm(ch, affine=False)
        self.gamma = nn.Linear(z_channels, ch)
        self.beta = nn.Linear(z_channels, ch)

    def forward(self, x: Tensor, std: Tensor, mean: Tensor) -> Tensor:
        scale = self.gamma(std)[:, :, None, None]  # [B, C, 1, 1]
        shift = self.beta(mean)[:, :, None, None]
        return self.gn(x) * scale + shift


class Encoder(nn.Module):
    """[B, 3, H, W] in [-1, 1] -> [B, z, H/f, W/f]. No attention; stride-2 3x3 convs downsample."""

    def __init__(self, cfg: WeTokConfig):
        super().__init__()
        ch, mult = cfg.ch, cfg.ch_mult
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1, bias=False)
        self.down = nn.ModuleList()
        block_in = ch
        for level, m in enumerate(mult):
            stage = nn.Module()
            block_out = ch * m
            stage.block = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                stage.block.append(_res_block(block_in, block_out))
                block_in = block_out
            if level < len(mult) - 1:
                stage.downsample = nn.Conv2d(block_out, block_out, 3, stride=2, padding=1)
            self.down.append(stage)
        self.mid_block = nn.ModuleList([_res_block(block_in, block_in) for _ in range(cfg.num_res_blocks)])
        self.norm_out = _group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, cfg.z_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_in(x)
        for stage in self.down:
            for block in stage.block:
                x = block(x)
            if hasattr(stage, "downsample"):
                x = stage.downsample(x)
        for block in self.mid_block:
            x = block(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class Decoder(nn.Module):
    """codes [B, z, h, w] (+ noise [B, z, h, w] for the generative decoder) -> [B, 3, h*f, w*f].

    Level by level from the coarsest: adaptive group norm styled by the codes, residual blocks,
    then a 2x upsample. `up` and `adaptive` are indexed by level, as upstream stores them."""

    def __init__(self, cfg: WeTokConfig):
        super().__init__()
        ch, mult, z = cfg.ch, cfg.ch_mult, cfg.z_channels
        self.generative = cfg.generative_decoder
        block_in = ch * mult[-1]
        self.conv_in = nn.Conv2d(2 * z if self.generative else z, block_in, 3, padding=1)
        self.mid_block = nn.ModuleList([_res_block(block_in, block_in) for _ in range(cfg.num_res_blocks)])
        up: list[nn.Module] = []
        adaptive: list[nn.Module] = []
        for level in reversed(range(len(mult))):
            adaptive.insert(0, AdaptiveGroupNorm(z, block_in))
            stage = nn.Module()
            block_out = ch * mult[level]
            stage.block = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                stage.block.append(_res_block(block_in, block_out))
                block_in = block_out
            if level > 0:
                stage.upsample = Upsample(block_in)
            up.insert(0, stage)
        self.up = nn.ModuleList(up)
        self.adaptive = nn.ModuleList(adaptive)
        self.norm_out = _group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, 3, 3, padding=1)

    @staticmethod
    def style(codes: Tensor) -> tuple[Tensor, Tensor]:
        """Per-channel std and mean of the code map over all positions: `[B, z]` each.

        The variance is the unbiased (N-1) one, as upstream's `torch.var` (despite its comment)."""
        var, mean = torch.var_mean(codes.flatten(2), dim=-1, correction=1)  # [B, z]
        return (var + NORM_EPS).sqrt(), mean

    def forward(self, codes: Tensor, noise: Tensor | None = None) -> Tensor:
        std, mean = self.style(codes)
        x = torch.cat([codes, noise], dim=1) if self.generative else codes  # [B, z or 2z, h, w]
        x = self.conv_in(x)
        for block in self.mid_block:
            x = block(x)
        for level in reversed(range(len(self.up))):
            x = self.adaptive[level](x, std, mean)
            for block in self.up[level].block:
                x = block(x)
            if level > 0:
                x = self.up[level].upsample(x)
        return self.conv_out(F.silu(self.norm_out(x)))


# ----------------------------------------------------------------------------------------------
# the tokenizer
# ----------------------------------------------------------------------------------------------
class WeTok(Tokenizer):
    """WeTok image tokenizer.

    encode: images [B, 3, H, W] in [0, 1], H and W divisible by f -> Tokens ids [B, G, H/f, W/f]
    (layout "2d", one d-bit sub-token per group). decode: Tokens -> images [B, 3, H, W] in [0, 1];
    the generative decoder takes `noise=` [B, z, H/f, W/f] or draws it with `generator=`.
    """

    family = "wetok"
    fp32_modules = ("quantizer",)  # precision policy: the LFQ sign stays fp32
    modality = "image"
    config_class = WeTokConfig

    @property
    def batch_split(self) -> dict[str, tuple[str, ...]]:
        """Big batches run in exact chunks; the generative decoder draws its noise for the whole batch at once."""
        return {"encode": ()} if self.cfg.generative_decoder else {"encode": (), "decode": ()}

    def __init__(self, cfg: WeTokConfig):
        super().__init__(cfg)
        self.encoder = Encoder(cfg)
        self.quantizer = LFQ(
            cfg.bits_per_group,
            cfg.num_groups,
            entropy_weight=cfg.entropy_weight,
            commitment_weight=cfg.commitment_weight,
            sample_entropy_weight=cfg.sample_entropy_weight,
            batch_entropy_weight=cfg.codebook_entropy_weight,
            temperature=cfg.entropy_temperature,
            batch_entropy="pooled",  # upstream's batch entropy pools the groups
        )
        self.decoder = Decoder(cfg)

    # -- properties ----------------------------------------------------------------------------
    # codebook_size (2^bits_per_group: the vocabulary of one sub-token) and num_codebooks (num_groups: the
    # sub-tokens per spatial position) are the LFQ's, read by the base class.
    @property
    def bits_per_token(self) -> int:
        """Bits per spatial position: num_groups * bits_per_group (the joint vocabulary is 2^this)."""
        return self.cfg.num_groups * self.cfg.bits_per_group

    @property
    def downsample_factor(self) -> int:
        return self.cfg.downsample_factor

    @property
    def token_rate(self) -> float:
        """Spatial positions per image at the training resolution (each holds num_codebooks sub-tokens)."""
        side = self.cfg.image_size // self.downsample_factor
        return float(side * side)

    # -- checks --------------------------------------------------------------------------------
    def _check_images(self, x) -> Tensor:
        x = prepare_images(x, name="WeTok", multiple_of=self.downsample_factor)
        h, w = x.shape[-2:]
        if (h // self.downsample_factor) * (w // self.downsample_factor) < 2:
            raise ValueError(
                f"WeTok needs at least 2 latent positions (the decoder's adaptive norm takes an unbiased variance "
                f"over them); a {h}x{w} image gives one at downsampling factor {self.downsample_factor}. Use a "
                f"larger image."
            )
        return x

    def _group_ids(self, tokens: Tokens) -> Tensor:
        """Validate tokens and return per-group ids [B, G, h, w]; joint ids [B, h, w] are split."""
        if not isinstance(tokens, Tokens):
            raise TypeError(f"WeTok.decode takes zoo.Tokens; got {type(tokens).__name__}. Wrap ids with zoo.Tokens(ids, layout='2d').")
        if tokens.layout != "2d":
            raise ValueError(f"WeTok tokens have layout '2d'; got {tokens.layout!r}.")
        ids = tokens.ids
        if ids.dim() == 3:  # joint ids [B, h, w]
            fam = tokens.meta.get("family")
            if fam and fam != self.family:
                raise ValueError(f"These tokens were made by a {fam!r} tokenizer; this is {self.family!r}.")
            return self.split_joint_ids(ids)
        if ids.dim() != 4 or ids.shape[1] != self.cfg.num_groups:
            raise ValueError(
                f"WeTok decodes ids [B, {self.cfg.num_groups}, h, w] (one id per group) or joint ids [B, h, w]; "
                f"got shape {list(ids.shape)}."
            )
        self.check_tokens(tokens)
        return ids

    # -- joint ids -----------------------------------------------------------------------------
    def _check_joint_width(self) -> None:
        if self.bits_per_token > 63:
            raise ValueError(
                f"Joint ids need num_groups * bits_per_group <= 63 bits to fit int64; this model has "
                f"{self.bits_per_token} bits ({self.cfg.num_groups} groups x {self.cfg.bits_per_group}). Use the "
                f"per-group ids [B, {self.cfg.num_groups}, h, w]."
            )

    def joint_ids(self, tokens: Tokens) -> Tensor:
        """Tokens (per-group ids [B, G, h, w]) -> one int64 id per position [B, h, w].

        joint = sum_g id_g * 2^(g*d): group 0 holds the lowest bits, so bit k of the joint id is the
        sign bit of latent channel k. Needs G*d <= 63."""
        self._check_joint_width()
        ids = self._group_ids(tokens)
        shifts = torch.arange(self.cfg.num_groups, device=ids.device) * self.cfg.bits_per_group
        return (ids << shifts[None, :, None, None]).sum(1)  # [B, h, w]

    def split_joint_ids(self, joint: Tensor) -> Tensor:
        """Joint ids [B, h, w] -> per-group ids [B, G, h, w] (the inverse of `joint_ids`)."""
        self._check_joint_width()
        if not isinstance(joint, Tensor) or joint.dim() != 3 or joint.is_floating_point():
            raise ValueError(f"Joint ids are an integer tensor [B, h, w]; got {getattr(joint, 'shape', type(joint))}.")
        if joint.numel() == 0:
            raise ValueError("Cannot decode empty tokens (no ids).")
        joint = joint.long()
        hi = 2**self.bits_per_token - 1
        if int(joint.min()) < 0 or int(joint.max()) > hi:
            raise ValueError(f"Joint ids must lie in [0, {hi}]; got ids in [{int(joint.min())}, {int(joint.max())}].")
        shifts = torch.arange(self.cfg.num_groups, device=joint.device) * self.cfg.bits_per_group
        return (joint[:, None] >> shifts[None, :, None, None]) & (self.codebook_size - 1)  # [B, G, h, w]

    # -- pieces (public so parity tests and users can inspect each stage) -------------------------
    def encode_latent(self, x: Tensor) -> Tensor:
        """images [B, 3, H, W] in [0, 1] -> pre-quantization latent [B, z, H/f, W/f]."""
        x = self._check_images(x)
        with torch.inference_mode():
            x = (x * 2 - 1).to(device=self.device, dtype=self.encoder.conv_in.weight.dtype)
            return self.encoder(x).float()

    def tokens_to_codes(self, tokens: Tokens) -> Tensor:
        """Tokens -> the quantized latent the decoder consumes: [B, z, h, w] in {-1, +1}."""
        ids = self._group_ids(tokens)
        with torch.inference_mode():
            codes = self.quantizer.ids_to_codes(rearrange(ids, "b g h w -> b h w g"))  # [B, h, w, z]
            return rearrange(codes, "b h w z -> b z h w").float()

    def decode_codes(self, codes: Tensor, noise: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Quantized latent [B, z, h, w] -> images [B, 3, h*f, w*f] in [0, 1] (clamped)."""
        with torch.inference_mode():
            return ((self._decode(codes, noise, generator).clamp(-1, 1) + 1) / 2).float()

    def _decode(self, codes: Tensor, noise: Tensor | None, generator: torch.Generator | None) -> Tensor:
        if codes.dim() != 4 or codes.shape[1] != self.cfg.z_channels:
            raise ValueError(f"WeTok decodes codes [B, {self.cfg.z_channels}, h, w]; got shape {list(codes.shape)}.")
        if codes.shape[-1] * codes.shape[-2] < 2:
            raise ValueError(
                "WeTok needs at least 2 latent positions to decode (the adaptive norm takes an unbiased variance "
                f"over them); got a {codes.shape[-2]}x{codes.shape[-1]} latent."
            )
        codes = codes.to(device=self.device, dtype=self.decoder.conv_in.weight.dtype)
        if not self.cfg.generative_decoder:
            if noise is not None:
                raise ValueError(
                    "This WeTok model has the plain (deterministic) decoder, which takes no noise; only the "
                    "generative-decoder variant (e.g. wetok-general-cr768-gd) accepts noise=."
                )
            return self.decoder(codes)
        if noise is None:
            device = generator.device if generator is not None else codes.device
            noise = torch.randn(codes.shape, generator=generator, device=device).to(codes)  # fp32 draw: same noise at any dtype
        else:
            if not isinstance(noise, Tensor) or tuple(noise.shape) != tuple(codes.shape):
                raise ValueError(
                    f"WeTok's generative decoder takes noise of the quantized latent's shape {list(codes.shape)}; "
                    f"got {list(noise.shape) if isinstance(noise, Tensor) else type(noise).__name__}."
                )
            if not noise.is_floating_point():
                raise TypeError(f"noise must be a float tensor; got {noise.dtype}.")
            check_finite(noise, "WeTok decoder noise")
            noise = noise.to(codes)
        return self.decoder(codes, noise)

    # -- contract ------------------------------------------------------------------------------
    @inference
    def encode(self, x: Tensor) -> Tokens:
        """images [B, 3, H, W] in [0, 1] (H, W divisible by f) -> Tokens ids [B, G, H/f, W/f]."""
        h = self.encode_latent(x)
        with torch.inference_mode():
            ids = self.quantizer.codes_to_ids(rearrange(h, "b z h w -> b h w z"))  # [B, h, w, G]: sign bits
        ids = rearrange(ids, "b h w g -> b g h w").long()
        meta = self.token_meta(
            image_size=[int(x.shape[-2]), int(x.shape[-1])],
            num_groups=self.cfg.num_groups,
            bits_per_group=self.cfg.bits_per_group,
        )
        return Tokens(ids=ids, layout="2d", meta=meta)

    @inference
    def decode(self, tokens: Tokens, noise: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Tokens -> images [B, 3, h*f, w*f] in [0, 1].

        noise: generative decoder only, [B, z, h, w] standard normal; drawn with `generator` (or the
        global RNG) when omitted. The plain decoder rejects noise."""
        codes = self.tokens_to_codes(tokens)
        return self.decode_codes(codes, noise=noise, generator=generator)

    def with_generative_decoder(self) -> "WeTok":
        """This plain model as the start of generative-decoder (GD) training: a new WeTok with
        `generative_decoder=True`, every weight copied, and the decoder's `conv_in` extended by zero
        weights for the noise channels (upstream's `lfqgan_pretrain_gan_decoder` stage 2), so it decodes
        exactly as this model does until the decoder is trained. Save it and fine-tune its decoder with
        encoder and quantizer frozen (recipes/wetok/gd-stage2.yaml)."""
        import dataclasses

        if self.cfg.generative_decoder:
            raise ValueError("This WeTok already has the generative decoder; with_generative_decoder() starts from a plain one.")
        gd = WeTok(dataclasses.replace(self.cfg, generative_decoder=True)).to(self.device)
        state = {k: v.clone() for k, v in self.state_dict().items()}
        w = state["decoder.conv_in.weight"]  # [C, z, 3, 3]
        state["decoder.conv_in.weight"] = torch.cat([w, torch.zeros_like(w)], dim=1)  # [C, 2z, 3, 3]: [codes; noise]
        gd.load_state_dict(state, strict=True)
        return gd.train(self.training)

    def forward(self, x: Tensor, noise: Tensor | None = None, generator: torch.Generator | None = None) -> TokenizerOutput:
        """Training pass with straight-through codes and the LFQ losses.

        recon is in the input's [0, 1] space, unclamped (upstream's [-1, 1] output mapped by (y + 1) / 2),
        so pixel losses compare it with x directly; an L1 here is half of upstream's L1 in [-1, 1]."""
        x = self._check_images(x)
        h = self.encoder(x * 2 - 1)
        q = self.quantizer(rearrange(h, "b z h w -> b h w z"))
        codes = rearrange(q.quantized, "b h w z -> b z h w")
        recon = (self._decode(codes, noise, generator) + 1) / 2  # [B, 3, H, W], [0, 1] space
        ids = rearrange(q.ids, "b h w g -> b g h w").long()
        tokens = Tokens(ids=ids.detach(), layout="2d", meta=self.token_meta(image_size=list(x.shape[-2:])))
        return TokenizerOutput(recon=recon, tokens=tokens, losses=dict(q.losses), metrics=dict(q.metrics))
