"""Training losses for tokenizers.

Reconstruction: L1 / L2; multi-resolution STFT (Yamamoto et al., Parallel WaveGAN, arXiv:1910.11480:
spectral convergence + log-magnitude L1); multi-scale mel L1 (HiFi-GAN, arXiv:2010.05646, and
Vocos/WavTokenizer, arXiv:2408.16532); perceptual (LPIPS, Zhang et al., arXiv:1801.03924: unit-
normalised features of a backbone, squared differences, optional learned 1x1 weights; the backbone is
any module returning a list of feature maps, so a locally built network works where no pretrained
one can be downloaded). Adversarial: hinge (Lim & Ye, arXiv:1705.02894) and least squares (LSGAN,
arXiv:1611.04076) for generator and discriminator; feature matching (arXiv:1910.06711). Latent: KL
to a unit Gaussian. Flow: rectified-flow velocity regression with logit-normal timesteps (Esser et
al., SD3, arXiv:2403.03206). Commitment and entropy losses come from the quantizer, in
`TokenizerOutput.losses`; `sum_losses` adds them with the recipe's weight.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# ----------------------------------------------------------------------------------------------
# reconstruction
# ----------------------------------------------------------------------------------------------
def l1_loss(recon: Tensor, target: Tensor) -> Tensor:
    return F.l1_loss(recon, target)


def l2_loss(recon: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(recon, target)


class MultiResolutionSTFTLoss(nn.Module):
    """Sum over resolutions of spectral convergence + L1 of log magnitudes. audio [B, C, T]."""

    def __init__(self, fft_sizes: Sequence[int] = (512, 1024, 2048), hop_sizes: Sequence[int] | None = None,
                 win_sizes: Sequence[int] | None = None, eps: float = 1e-7):
        super().__init__()
        if not fft_sizes:
            raise ValueError("MultiResolutionSTFTLoss needs at least one FFT size.")
        self.fft_sizes = tuple(fft_sizes)
        self.hop_sizes = tuple(hop_sizes or [n // 4 for n in fft_sizes])
        self.win_sizes = tuple(win_sizes or fft_sizes)
        if not len(self.fft_sizes) == len(self.hop_sizes) == len(self.win_sizes):
            raise ValueError("fft_sizes, hop_sizes and win_sizes must have the same length.")
        self.eps = eps

    def forward(self, recon: Tensor, target: Tensor) -> Tensor:
        x, y = recon.reshape(-1, recon.shape[-1]).float(), target.reshape(-1, target.shape[-1]).float()  # [B*C, T]
        total = x.new_zeros(())
        for n_fft, hop, win in zip(self.fft_sizes, self.hop_sizes, self.win_sizes):
            window = torch.hann_window(win, device=x.device)
            X = torch.stft(x, n_fft, hop, win, window, return_complex=True).abs().clamp(min=self.eps)  # [B*C, F, frames]
            Y = torch.stft(y, n_fft, hop, win, window, return_complex=True).abs().clamp(min=self.eps)
            sc = torch.linalg.norm(Y - X, dim=(-2, -1)) / torch.linalg.norm(Y, dim=(-2, -1)).clamp(min=self.eps)
            total = total + sc.mean() + F.l1_loss(X.log(), Y.log())
        return total / len(self.fft_sizes)


class MelLoss(nn.Module):
    """L1 between log-mel spectrograms, averaged over one or more (n_fft, hop, n_mels) scales. audio [B, C, T]."""

    def __init__(self, sample_rate: int, n_ffts: Sequence[int] = (1024,), hops: Sequence[int] | None = None,
                 n_mels: Sequence[int] | int = 100, f_min: float = 0.0, f_max: float | None = None, clip: float = 1e-5):
        super().__init__()
        import torchaudio

        hops = tuple(hops or [n // 4 for n in n_ffts])
        mels = (n_mels,) * len(n_ffts) if isinstance(n_mels, int) else tuple(n_mels)
        if not len(n_ffts) == len(hops) == len(mels):
            raise ValueError("n_ffts, hops and n_mels must have the same length.")
        self.transforms = nn.ModuleList(
            torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=n, hop_length=h, n_mels=m,
                                                 f_min=f_min, f_max=f_max, power=1.0, center=True)
            for n, h, m in zip(n_ffts, hops, mels)
        )
        self.clip = clip

    def forward(self, recon: Tensor, target: Tensor) -> Tensor:
        total = recon.new_zeros((), dtype=torch.float32)
        for mel in self.transforms:
            a = mel(recon.float()).clamp(min=self.clip).log()
            b = mel(target.float()).clamp(min=self.clip).log()
            total = total + F.l1_loss(a, b)
        return total / len(self.transforms)


# ----------------------------------------------------------------------------------------------
# perceptual
# ----------------------------------------------------------------------------------------------
class TinyConvBackbone(nn.Module):
    """A small VGG-like feature pyramid built here (5 stages). Stands in for a pretrained backbone
    where none can be downloaded; with random weights it is a weak but working perceptual metric."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 64, 64)):
        super().__init__()
        stages, c_in = [], 3
        for i, c in enumerate(widths):
            stages.append(nn.Sequential(
                nn.MaxPool2d(2) if i else nn.Identity(),
                nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(),
                nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
            ))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.channels = tuple(widths)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class VGG16Backbone(nn.Module):
    """torchvision's VGG16 features cut at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (the LPIPS taps).
    Weights come from `weights_path` (a local state dict of torchvision's vgg16) or stay random."""

    TAPS = (4, 9, 16, 23, 30)

    def __init__(self, weights_path: str | None = None):
        super().__init__()
        import torchvision

        vgg = torchvision.models.vgg16(weights=None)
        if weights_path:
            from zoo.hub import read_checkpoint

            sd, _ = read_checkpoint(weights_path)
            vgg.load_state_dict(sd, strict=True)
        self.features = vgg.features[: self.TAPS[-1]]
        self.channels = (64, 128, 256, 512, 512)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i + 1 in self.TAPS:
                feats.append(x)
        return feats


class PerceptualLoss(nn.Module):
    """LPIPS-style distance. images [B, 3, H, W] in [0, 1] -> scalar.

    backbone: module mapping normalised images to a list of feature maps, with `.channels`.
    linear: learned non-negative 1x1 weights per channel (off: plain channel mean, as LPIPS "baseline").
    The backbone is frozen and kept in eval mode; gradients flow to the input only.
    """

    def __init__(self, backbone: nn.Module, linear: bool = False,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225)):
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in backbone.channels) if linear else None
        if self.lins is not None:
            for lin in self.lins:
                nn.init.constant_(lin.weight, 1.0 / lin.in_channels)
            self.lins.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, recon: Tensor, target: Tensor) -> Tensor:
        fa = self.backbone((recon.float() - self.mean) / self.std)
        fb = self.backbone((target.float() - self.mean) / self.std)
        total = recon.new_zeros((), dtype=torch.float32)
        for i, (a, b) in enumerate(zip(fa, fb)):
            a = a / (a.norm(dim=1, keepdim=True) + 1e-10)  # unit length over channels
            b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
            d = (a - b) ** 2  # [B, C, h, w]
            d = self.lins[i](d) if self.lins is not None else d.sum(1, keepdim=True)
            total = total + d.mean()
        return total


def build_perceptual(backbone: str = "tiny_conv", weights: str | None = None, linear: bool = False) -> PerceptualLoss:
    """Recipe `perceptual_backbone` -> PerceptualLoss. "vgg16" (torchvision architecture; `weights`: a
    local file with its state dict, since nothing is downloaded here) or "tiny_conv" (built here;
    `weights` optional)."""
    if backbone == "vgg16":
        net = VGG16Backbone(weights)
    elif backbone == "tiny_conv":
        net = TinyConvBackbone()
        if weights:
            from zoo.hub import read_checkpoint

            net.load_state_dict(read_checkpoint(weights)[0], strict=True)
    else:
        raise ValueError(f"perceptual backbone must be 'vgg16' or 'tiny_conv'; got {backbone!r}.")
    return PerceptualLoss(net, linear=linear)


# ----------------------------------------------------------------------------------------------
# adversarial
# ----------------------------------------------------------------------------------------------
ADV_KINDS = ("hinge", "lsgan")


def reconstruction_terms(w, recon: Tensor, x: Tensor, *, stft=None, mel=None, perceptual=None) -> dict[str, Tensor]:
    """The weighted media comparisons a recipe asks for: `w` has l1, l2, stft, mel and perceptual weights
    (0 = off); the loss modules for the non-zero ones are given. -> {term: weighted loss}."""
    t = {}
    if w.l1:
        t["l1"] = w.l1 * l1_loss(recon, x)
    if w.l2:
        t["l2"] = w.l2 * l2_loss(recon, x)
    if w.stft:
        t["stft"] = w.stft * stft(recon, x)
    if w.mel:
        t["mel"] = w.mel * mel(recon, x)
    if w.perceptual:
        t["perceptual"] = w.perceptual * perceptual(recon, x)
    return t


def discriminator_loss(real: Iterable[Tensor], fake: Iterable[Tensor], kind: str = "hinge") -> Tensor:
    """Sum over discriminator outputs (one per sub-discriminator) of the D loss."""
    if kind not in ADV_KINDS:
        raise ValueError(f"adversarial loss kind must be one of {ADV_KINDS}; got {kind!r}.")
    total = 0.0
    for r, f in zip(real, fake):
        if kind == "hinge":
            total = total + F.relu(1 - r).mean() + F.relu(1 + f).mean()
        else:
            total = total + ((r - 1) ** 2).mean() + (f**2).mean()
    return total


def generator_loss(fake: Iterable[Tensor], kind: str = "hinge") -> Tensor:
    if kind not in ADV_KINDS:
        raise ValueError(f"adversarial loss kind must be one of {ADV_KINDS}; got {kind!r}.")
    total = 0.0
    for f in fake:
        total = total + (-f.mean() if kind == "hinge" else ((f - 1) ** 2).mean())
    return total


def feature_matching_loss(real_feats: Iterable[Iterable[Tensor]], fake_feats: Iterable[Iterable[Tensor]]) -> Tensor:
    """Mean L1 between the discriminator's intermediate features of real (detached) and generated input."""
    total, n = 0.0, 0
    for rs, fs in zip(real_feats, fake_feats):
        for r, f in zip(rs, fs):
            total = total + F.l1_loss(f, r.detach())
            n += 1
    return total / max(n, 1)


# ----------------------------------------------------------------------------------------------
# latent and flow
# ----------------------------------------------------------------------------------------------
def kl_loss(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)), summed over latent dims, averaged over the batch."""
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)
    return kl.flatten(1).sum(1).mean()


def logit_normal_timesteps(batch_size: int, mean: float = 0.0, std: float = 1.0, *,
                           generator: torch.Generator | None = None, device=None) -> Tensor:
    """t = sigmoid(n), n ~ N(mean, std^2): [B] in (0, 1), denser in the middle (SD3's choice)."""
    n = torch.randn(batch_size, generator=generator, device=device) * std + mean
    return torch.sigmoid(n)


def flow_matching_loss(velocity: Tensor, target: Tensor) -> Tensor:
    """Rectified-flow velocity regression: mean squared error between predicted and target velocity."""
    if velocity.shape != target.shape:
        raise ValueError(f"velocity {list(velocity.shape)} and target {list(target.shape)} must have the same shape.")
    return F.mse_loss(velocity.float(), target.float())


def sum_losses(losses: dict[str, Tensor], weight: float = 1.0) -> Tensor:
    """Sum of the quantizer's (already weighted) losses from TokenizerOutput.losses, times `weight`."""
    if not losses:
        return torch.zeros(())
    return weight * sum(losses.values())
