"""Vocos decoder blocks: a ConvNeXt-1d backbone (optionally with AdaLayerNorm and an attention
prelude) and an iSTFT head that predicts log-magnitude and phase.

Vocos: "Vocos: Closing the gap between time-domain and Fourier-based neural vocoders for
high-quality audio synthesis", Siuzdak, arXiv 2306.00814, github.com/gemelo-ai/vocos (MIT).
The attention prelude (`pos_net`: ResNet blocks around one self-attention block, from taming /
LDM) is WavTokenizer's addition (arXiv 2408.16532, github.com/jishengpeng/WavTokenizer, MIT).
XY-Tokenizer uses the plain variant (no prelude, plain LayerNorm).

Written anew from the papers and a reading of the upstream code. Submodule names follow the
upstream ones (`embed`, `pos_net.N`, `norm`, `convnext.N.{dwconv,norm,pwconv1,pwconv2,gamma}`,
`final_layer_norm`; head `out`, `istft.window`) so that released checkpoints map one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.blocks.attention import attend
from zoo.blocks.resnet import ResBlock

__all__ = [
    "AdaLayerNorm",
    "ConvNeXtBlock",
    "AttnBlock1d",
    "VocosBackbone",
    "ISTFT",
    "ISTFTHead",
]


class AdaLayerNorm(nn.Module):
    """LayerNorm without affine, then a per-condition scale and shift (rows of two embeddings).

    x: [B, L, D], cond_id: int64 [1] (one id for the batch) or [B] -> [B, L, D].
    """

    def __init__(self, num_embeddings: int, dim: int, eps: float = 1e-6):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.scale = nn.Embedding(num_embeddings, dim)
        self.shift = nn.Embedding(num_embeddings, dim)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: Tensor, cond_id: Tensor) -> Tensor:
        if cond_id.numel() == 1:  # one condition for the whole batch: fuse the affine into layer_norm
            i = cond_id.reshape(1)  # stays a tensor: no device-to-host sync, no graph break under torch.compile
            return F.layer_norm(x, (self.dim,), self.scale.weight.index_select(0, i)[0],
                                self.shift.weight.index_select(0, i)[0], self.eps)
        scale = self.scale(cond_id)[:, None, :]  # [B, 1, D]
        shift = self.shift(cond_id)[:, None, :]
        return F.layer_norm(x, (self.dim,), eps=self.eps) * scale + shift


class ConvNeXtBlock(nn.Module):
    """Depthwise conv k7 -> (Ada)LayerNorm -> Linear -> GELU -> Linear -> layer scale, plus residual.

    x: [B, D, L] -> [B, D, L].
    """

    def __init__(
        self,
        dim: int,
        intermediate_dim: int,
        layer_scale_init_value: float | None,
        adanorm_num_embeddings: int | None = None,
        kernel_size: int = 7,
        eps: float = 1e-6,
    ):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=kernel_size, padding=kernel_size // 2, groups=dim)
        self.adanorm = adanorm_num_embeddings is not None
        self.norm = AdaLayerNorm(adanorm_num_embeddings, dim, eps) if self.adanorm else nn.LayerNorm(dim, eps=eps)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        if layer_scale_init_value is not None and layer_scale_init_value > 0:
            self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
        else:
            self.gamma = None

    def forward(self, x: Tensor, cond_id: Tensor | None = None) -> Tensor:
        residual = x
        h = self.dwconv(x).transpose(1, 2)  # [B, L, D]
        h = self.norm(h, cond_id) if self.adanorm else self.norm(h)
        h = self.pwconv2(self.act(self.pwconv1(h)))
        if self.gamma is not None:
            h = h * self.gamma
        return residual + h.transpose(1, 2)  # [B, D, L]


class AttnBlock1d(nn.Module):
    """GroupNorm -> single-head self-attention over time (1x1 conv q, k, v, proj_out), plus residual.

    Full (non-causal) attention, scale 1/sqrt(C). x: [B, C, L] -> [B, C, L].
    """

    def __init__(self, channels: int, num_groups: int = 32, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.GroupNorm(num_groups, channels, eps=eps)
        self.q = nn.Conv1d(channels, channels, kernel_size=1)
        self.k = nn.Conv1d(channels, channels, kernel_size=1)
        self.v = nn.Conv1d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv1d(channels, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        # contiguous [B, 1, L, C]: one head; strided inputs send SDPA on the CPU to its math path, which
        # materialises the L x L weights (1.2 GB at L = 12000), while the fused kernel stays linear in L
        q, k, v = (proj(h).transpose(1, 2)[:, None].contiguous() for proj in (self.q, self.k, self.v))
        a = attend(q, k, v)  # [B, L, C], softmax(q k^T / sqrt(C)) v
        return x + self.proj_out(a.transpose(1, 2))


class VocosBackbone(nn.Module):
    """Vocos ConvNeXt-1d backbone.

    x: [B, input_channels, L] (features at the frame rate) -> [B, L, dim] (after the final LayerNorm).

    input_channels: feature channels in. dim: model width. intermediate_dim: ConvNeXt MLP width.
    num_layers: ConvNeXt blocks. layer_scale_init_value: initial `gamma` (None: 1/num_layers).
    adanorm_num_embeddings: None for plain LayerNorm; K for AdaLayerNorm with K conditions (the
    forward then takes `cond_id`). attention_prelude: WavTokenizer's `pos_net` (ResNet, ResNet,
    attention, ResNet, ResNet, GroupNorm) between the input conv and the first norm.
    prelude_dropout / num_groups: dropout and GroupNorm groups of the prelude.
    """

    def __init__(
        self,
        input_channels: int,
        dim: int,
        intermediate_dim: int,
        num_layers: int,
        layer_scale_init_value: float | None = None,
        adanorm_num_embeddings: int | None = None,
        attention_prelude: bool = False,
        prelude_dropout: float = 0.1,
        num_groups: int = 32,
        eps: float = 1e-6,
    ):
        super().__init__()
        self.input_channels = input_channels
        self.dim = dim
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.adanorm = adanorm_num_embeddings is not None
        self.norm = AdaLayerNorm(adanorm_num_embeddings, dim, eps) if self.adanorm else nn.LayerNorm(dim, eps=eps)
        layer_scale_init_value = layer_scale_init_value or 1.0 / num_layers
        self.convnext = nn.ModuleList(
            ConvNeXtBlock(dim, intermediate_dim, layer_scale_init_value, adanorm_num_embeddings, eps=eps)
            for _ in range(num_layers)
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.apply(_trunc_normal_init)  # the prelude keeps PyTorch's default init, as upstream
        if attention_prelude:
            if dim % num_groups:
                raise ValueError(f"VocosBackbone: dim={dim} must be divisible by num_groups={num_groups} for the attention prelude.")
            def res() -> ResBlock:  # taming / LDM's ResnetBlock in 1D, conv biases and dropout as upstream
                return ResBlock(dim, dims=1, bias=True, dropout=prelude_dropout, num_groups=num_groups, eps=eps)

            self.pos_net = nn.Sequential(
                res(), res(), AttnBlock1d(dim, num_groups, eps), res(), res(), nn.GroupNorm(num_groups, dim, eps=eps)
            )
        else:
            self.pos_net = None

    def forward(self, x: Tensor, cond_id: Tensor | None = None) -> Tensor:
        if self.adanorm and cond_id is None:
            raise ValueError("This VocosBackbone uses AdaLayerNorm: pass cond_id (an int64 tensor, e.g. torch.tensor([0])).")
        x = self.embed(x)  # [B, D, L]
        if self.pos_net is not None:
            x = self.pos_net(x)
        h = x.transpose(1, 2)  # [B, L, D]
        h = self.norm(h, cond_id) if self.adanorm else self.norm(h)
        x = h.transpose(1, 2)  # [B, D, L]
        for block in self.convnext:
            x = block(x, cond_id)
        return self.final_layer_norm(x.transpose(1, 2))  # [B, L, D]


def _trunc_normal_init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv1d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        nn.init.zeros_(m.bias)


class ISTFT(nn.Module):
    """Inverse STFT with a periodic Hann window.

    padding="same": frames are centred on multiples of the hop with (win - hop) / 2 trimmed on each
    side, so L frames give exactly L * hop samples (Vocos' custom overlap-add; `torch.istft` with
    center=True gives a different result). padding="center": `torch.istft(center=True)`.
    spec: complex [B, n_fft // 2 + 1, L] -> audio [B, T].
    """

    def __init__(self, n_fft: int, hop_length: int, win_length: int | None = None, padding: str = "same"):
        super().__init__()
        if padding not in ("same", "center"):
            raise ValueError(f"ISTFT padding must be 'same' or 'center'; got {padding!r}.")
        win_length = win_length or n_fft
        if padding == "same" and (win_length - hop_length) % 2:
            raise ValueError(f"ISTFT 'same' padding needs win_length - hop_length even; got {win_length} - {hop_length}.")
        self.n_fft, self.hop_length, self.win_length, self.padding = n_fft, hop_length, win_length, padding
        self.register_buffer("window", torch.hann_window(win_length))

    def forward(self, spec: Tensor) -> Tensor:
        if self.padding == "center":
            return torch.istft(spec, self.n_fft, self.hop_length, self.win_length, self.window.float(), center=True)
        pad = (self.win_length - self.hop_length) // 2
        frames = spec.shape[-1]
        ifft = torch.fft.irfft(spec, self.n_fft, dim=1, norm="backward")  # [B, n_fft, L]
        window = self.window.float()
        ifft = ifft * window[None, :, None]
        out_len = (frames - 1) * self.hop_length + self.win_length
        y = F.fold(ifft, (1, out_len), kernel_size=(1, self.win_length), stride=(1, self.hop_length))
        y = y[:, 0, 0, pad : out_len - pad]  # [B, L * hop]
        env = self._envelope(window, frames, out_len)[pad : out_len - pad]
        return y / env

    def _envelope(self, window: Tensor, frames: int, out_len: int) -> Tensor:
        """Overlap-added squared window: the normaliser of the weighted overlap-add."""
        wsq = window.square()[None, :, None].expand(1, -1, frames)
        env = F.fold(wsq, (1, out_len), kernel_size=(1, self.win_length), stride=(1, self.hop_length))
        return env.reshape(-1)


class ISTFTHead(nn.Module):
    """Linear to n_fft + 2 channels: log-magnitude (first half) and phase (second half), then iSTFT.

    x: [B, L, dim] -> audio [B, L * hop] (padding="same").
    """

    def __init__(self, dim: int, n_fft: int, hop_length: int, padding: str = "same", max_magnitude: float = 100.0):
        super().__init__()
        self.out = nn.Linear(dim, n_fft + 2)
        self.istft = ISTFT(n_fft=n_fft, hop_length=hop_length, win_length=n_fft, padding=padding)
        self.max_magnitude = max_magnitude

    def spectrum(self, x: Tensor) -> Tensor:
        """x: [B, L, dim] -> complex spectrum [B, n_fft // 2 + 1, L]."""
        h = self.out(x).float().transpose(1, 2)  # [B, n_fft + 2, L]; the spectrum is always fp32
        log_mag, phase = h.chunk(2, dim=1)
        mag = torch.exp(log_mag).clamp(max=self.max_magnitude)
        return torch.polar(mag, phase)  # mag * (cos p + i sin p)

    def forward(self, x: Tensor) -> Tensor:
        return self.istft(self.spectrum(x))
