"""Discriminators for adversarial tokenizer training.

PatchGAN (Isola et al., pix2pix, arXiv:1611.07004; as in taming-transformers / VQGAN,
arXiv:2012.09841) for images. For audio, as WavTokenizer (arXiv:2408.16532) trains, following Vocos
(arXiv:2306.00814): the multi-period discriminator of HiFi-GAN (arXiv:2010.05646) and the
multi-resolution spectrogram discriminator of UnivNet (arXiv:2106.07889). Written here from the papers.

Every discriminator maps a batch to `(logits, features)`: `logits` a list with one tensor per
sub-discriminator, `features` a list (per sub-discriminator) of intermediate activations for the
feature-matching loss. `widths` / `channels` arguments shrink them for tiny CPU recipes.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


class PatchGAN(nn.Module):
    """images [B, 3, H, W] in [0, 1] -> one logit map [B, 1, h, w] (one realness score per patch)."""

    def __init__(self, in_channels: int = 3, width: int = 64, num_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if norm not in ("batch", "group", "none"):
            raise ValueError(f"PatchGAN norm must be 'batch', 'group' or 'none'; got {norm!r}.")

        def norm_layer(c):
            return {"batch": lambda: nn.BatchNorm2d(c), "group": lambda: nn.GroupNorm(min(32, c), c),
                    "none": nn.Identity}[norm]()

        layers = [nn.Sequential(nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2))]
        c = width
        for i in range(1, num_layers + 1):
            c_out = width * min(2**i, 8)
            stride = 2 if i < num_layers else 1
            layers.append(nn.Sequential(nn.Conv2d(c, c_out, 4, stride, 1, bias=norm == "none"), norm_layer(c_out),
                                        nn.LeakyReLU(0.2)))
            c = c_out
        self.layers = nn.ModuleList(layers)
        self.head = nn.Conv2d(c, 1, 4, 1, 1)

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        x = x * 2 - 1  # images in [0, 1] -> [-1, 1], as the generators of this family see them
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return [self.head(x)], [feats]


class PeriodDiscriminator(nn.Module):
    """audio [B, 1, T] folded to [B, 1, T/p, p]; 2D convs along time within each phase."""

    def __init__(self, period: int, channels: Sequence[int] = (32, 128, 512, 1024, 1024)):
        super().__init__()
        self.period = period
        convs, c_in = [], 1
        for i, c in enumerate(channels):
            stride = (3, 1) if i < len(channels) - 1 else (1, 1)
            convs.append(weight_norm(nn.Conv2d(c_in, c, (5, 1), stride, padding=(2, 0))))
            c_in = c
        self.convs = nn.ModuleList(convs)
        self.post = weight_norm(nn.Conv2d(c_in, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), mode="reflect")
        x = x.reshape(b, c, -1, self.period)  # [B, 1, T/p, p]
        return _conv_stack(self.convs, self.post, x)


def _conv_stack(convs: nn.ModuleList, post: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Leaky-ReLU conv stack, then `post` -> (logits [B, n], every layer's output for feature matching)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), channels: Sequence[int] = (32, 128, 512, 1024, 1024)):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        outs = [d(x) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class ResolutionDiscriminator(nn.Module):
    """audio [B, 1, T] -> magnitude spectrogram [B, 1, frames, F] -> 2D convs."""

    def __init__(self, n_fft: int, hop: int, win: int, channels: int = 32):
        super().__init__()
        self.n_fft, self.hop, self.win = n_fft, hop, win
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, channels, (3, 9), padding=(1, 4))),
            weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
        ])
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        window = torch.hann_window(self.win, device=x.device)
        spec = torch.stft(x.squeeze(1).float(), self.n_fft, self.hop, self.win, window, return_complex=True).abs()
        x = spec.transpose(1, 2).unsqueeze(1)  # [B, 1, frames, F]
        return _conv_stack(self.convs, self.post, x)


class MultiResolutionDiscriminator(nn.Module):
    def __init__(self, resolutions: Sequence[Sequence[int]] = ((1024, 256, 1024), (2048, 512, 2048), (512, 128, 512)),
                 channels: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList(ResolutionDiscriminator(*r, channels=channels) for r in resolutions)

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        outs = [d(x) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class Discriminators(nn.Module):
    """Several discriminators as one: their logits and feature lists concatenated."""

    def __init__(self, *discriminators: nn.Module):
        super().__init__()
        self.parts = nn.ModuleList(discriminators)

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        logits, feats = [], []
        for d in self.parts:
            lo, fe = d(x)
            logits += lo
            feats += fe
        return logits, feats


def build_discriminator(kind: str, *, width: int = 64, num_layers: int = 3, norm: str = "batch",
                        periods: Sequence[int] = (2, 3, 5, 7, 11), mpd_channels: Sequence[int] = (32, 128, 512, 1024, 1024),
                        resolutions: Sequence[Sequence[int]] = ((1024, 256, 1024), (2048, 512, 2048), (512, 128, 512)),
                        mrd_channels: int = 32) -> nn.Module:
    """Recipe `discriminator.kind` -> module: "patchgan" (images), "mpd", "mrd" or "mpd+mrd" (audio,
    WavTokenizer's pair)."""
    if kind == "patchgan":
        return PatchGAN(width=width, num_layers=num_layers, norm=norm)
    parts = []
    for name in kind.split("+"):
        if name == "mpd":
            parts.append(MultiPeriodDiscriminator(periods, mpd_channels))
        elif name == "mrd":
            parts.append(MultiResolutionDiscriminator(resolutions, mrd_channels))
        else:
            raise ValueError(f"discriminator kind must be 'patchgan', 'mpd', 'mrd' or 'mpd+mrd'; got {kind!r}.")
    return parts[0] if len(parts) == 1 else Discriminators(*parts)
