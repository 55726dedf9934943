"""MaskGIT-VQGAN: the convolutional VQGAN of MaskGIT, encoder and decoder (no attention layers).

MaskGIT: Chang, Zhang, Jiang, Liu, Freeman, "MaskGIT: Masked Generative Image Transformer",
arXiv 2202.04200, github.com/google-research/maskgit (Apache-2.0); the PyTorch packaging read here is
the one in TiTok (arXiv 2406.07550, github.com/bytedance/1d-tokenizer, `modeling/modules/maskgit_vqgan.py`,
Apache-2.0), whose module names the released weights use. Written anew from a reading of that code.

Users: One-D-Piece / TiTok's pixel decoder (`PixelDecoder`, zoo/tokenizers/one_d_piece/model.py) and the
stage-1 proxy teacher (`VQGANEncoder`, zoo/train/proxy.py). Module names follow upstream
(`conv_in`, `down.i.block.j`, `mid.j`, `up.i.block.j`, `norm_out`, `conv_out`) so released state dicts
load without renames. Upstream's `Conv2dSame` is used only with stride 1 (kernels 3 and 1), where it
equals a plain conv with padding 1 / 0; the encoder downsamples by 2x2 average pooling. Residual blocks
are zoo.blocks.resnet.ResBlock with MaskGIT's quirk, which the released weights were trained with: where
the width changes, the residual is `nin_shortcut` (1x1, out -> out) of the block's own output
(shortcut="output"), and the input is not carried over.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from zoo.blocks.resnet import ResBlock

__all__ = ["PixelDecoder", "VQGANEncoder"]


class VQGANUpLevel(nn.Module):
    """Residual blocks at one resolution, then (except the finest level) nearest x2 + conv3x3."""

    def __init__(self, in_channels: int, out_channels: int, num_res_blocks: int, upsample: bool, norm_groups: int = 32):
        super().__init__()
        self.block = nn.ModuleList(
            ResBlock(in_channels if i == 0 else out_channels, out_channels, num_groups=norm_groups, shortcut="output")
            for i in range(num_res_blocks)
        )
        self.upsample_conv = nn.Conv2d(out_channels, out_channels, 3, padding=1) if upsample else None

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.block:
            x = blk(x)
        if self.upsample_conv is not None:
            x = self.upsample_conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return x


class PixelDecoder(nn.Module):
    """MaskGIT-VQGAN decoder: `[B, z_channels, g, g] -> [B, 3, g * 2**(L-1), g * 2**(L-1)]`, unclamped.

    `up[i]` is resolution level i (0 = finest); the levels run from coarsest to finest. `norm_groups`: GroupNorm
    groups (32 upstream); with as many groups as channels GroupNorm becomes instance norm, which removes each
    channel's per-image mean and contrast (a narrow decoder then cannot render an image's overall colour).
    """

    def __init__(self, z_channels: int, channels: int, channel_mult: tuple[int, ...], num_res_blocks: int,
                 out_channels: int = 3, norm_groups: int = 32):
        super().__init__()
        mults = tuple(channel_mult)
        top = channels * mults[-1]
        self.conv_in = nn.Conv2d(z_channels, top, 3, padding=1)
        self.mid = nn.ModuleList(ResBlock(top, top, num_groups=norm_groups) for _ in range(num_res_blocks))
        levels = []
        for i in range(len(mults)):
            block_in = channels * (mults[i + 1] if i + 1 < len(mults) else mults[-1])
            levels.append(VQGANUpLevel(block_in, channels * mults[i], num_res_blocks, upsample=i > 0, norm_groups=norm_groups))
        self.up = nn.ModuleList(levels)
        self.norm_out = nn.GroupNorm(norm_groups, channels * mults[0], eps=1e-6)
        self.conv_out = nn.Conv2d(channels * mults[0], out_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.conv_in(z)
        for blk in self.mid:
            h = blk(h)
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VQGANDownLevel(nn.Module):
    """Residual blocks at one resolution, then (except the coarsest level) 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int, num_res_blocks: int, downsample: bool):
        super().__init__()
        self.block = nn.ModuleList(
            ResBlock(in_channels if i == 0 else out_channels, out_channels, shortcut="output") for i in range(num_res_blocks)
        )
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.block:
            x = blk(x)
        return F.avg_pool2d(x, kernel_size=2, stride=2) if self.downsample else x


class VQGANEncoder(nn.Module):
    """MaskGIT-VQGAN encoder: `[B, in_channels, H, W] -> [B, z_channels, H / 2**(L-1), W / 2**(L-1)]`.

    conv_in (3x3, no bias) -> `down[i]` for levels i = 0 (finest) .. L-1, each `num_res_blocks` residual
    blocks to `channels * channel_mult[i]` channels, pooled except the last -> `mid` (residual blocks at
    the top width) -> GroupNorm -> SiLU -> conv_out (1x1, with bias) to `z_channels`.
    """

    def __init__(self, channels: int, channel_mult: tuple[int, ...], num_res_blocks: int, z_channels: int,
                 in_channels: int = 3):
        super().__init__()
        mults = tuple(channel_mult)
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        widths = [channels] + [channels * m for m in mults]  # level i maps widths[i] -> widths[i + 1]
        self.down = nn.ModuleList(
            VQGANDownLevel(widths[i], widths[i + 1], num_res_blocks, downsample=i < len(mults) - 1)
            for i in range(len(mults))
        )
        top = widths[-1]
        self.mid = nn.ModuleList(ResBlock(top, top) for _ in range(num_res_blocks))
        self.norm_out = nn.GroupNorm(32, top, eps=1e-6)
        self.conv_out = nn.Conv2d(top, z_channels, 1)

    @property
    def downsampling(self) -> int:
        """Side of the pixel patch that one output position summarises."""
        return 2 ** (len(self.down) - 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        for blk in self.mid:
            h = blk(h)
        return self.conv_out(F.silu(self.norm_out(h)))
