"""SEANet convolutional audio encoder (weight-normed convs, residual blocks, an LSTM), as in EnCodec
(WavTokenizer is its only user so far; kept here as EnCodec's encoder, which EnCodec-derived codecs share).

EnCodec: "High Fidelity Neural Audio Compression", Défossez et al., arXiv 2210.13438,
github.com/facebookresearch/encodec (MIT); SEANet: Tagliasacchi et al., arXiv 2009.02095.
WavTokenizer (arXiv 2408.16532, github.com/jishengpeng/WavTokenizer, MIT) uses this encoder.

Written anew from the papers and a reading of the upstream code. The module layout follows
EnCodec's (`model.N` in one Sequential; convs at `.conv`, LSTM at `.lstm`, residual blocks with
`block.1`, `block.3`, `shortcut`) so released checkpoints map one to one; weight norm is
`torch.nn.utils.parametrizations.weight_norm` (g = `parametrizations.weight.original0`,
v = `original1`), the same function as EnCodec's legacy `weight_g` / `weight_v`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations

__all__ = ["ELU", "pad1d", "SConv1d", "time_major", "SEANetResnetBlock", "SLSTM", "SEANetEncoder", "SEANetEncoderStream"]


class ELU(nn.ELU):
    """nn.ELU as exp(min(x, 0)) - 1 on the negative side: ATen's ELU calls a scalar expm1 per element
    (2-3x slower on CPU at audio rates); in fp32 the two differ by under 1e-7 (absolute). Training and
    half precisions (where exp(x) - 1 cancels to nothing near 0) keep F.elu."""

    def forward(self, x: Tensor) -> Tensor:
        if x.requires_grad or x.dtype != torch.float32:
            return F.elu(x, self.alpha)
        return self.into(x, torch.empty_like(x))

    def into(self, x: Tensor, out: Tensor) -> Tensor:
        """ELU(x) written into `out` (same shape; e.g. the inside of a padded buffer), for inference."""
        if x.requires_grad or x.dtype != torch.float32:
            return out.copy_(F.elu(x, self.alpha))
        neg = torch.clamp_max(x, 0, out=out).exp_().sub_(1)
        if self.alpha != 1.0:
            neg.mul_(self.alpha)
        if 0.0 <= self.alpha <= 1.0:  # alpha * (exp(x) - 1) >= x for x <= 0 and 0 for x > 0: the max picks ELU(x)
            return torch.maximum(x, neg, out=neg)  # ~6x faster than torch.where with a mask on CPU
        return out.copy_(torch.where(x > 0, x, neg))


def pad1d(x: Tensor, left: int, right: int, mode: str = "reflect", dim: int = -1, fill=None) -> Tensor:
    """F.pad along time (`dim`) that also reflects inputs shorter than the pad (zero-extends them first).

    fill(x, out): an elementwise function written straight into the padded buffer's inside (inference: the
    ELU before a conv, one pass and one buffer fewer); the padding is then that of fill(x)."""
    if left == 0 and right == 0:  # F.pad would still copy the whole signal
        return x if fill is None else fill(x, torch.empty_like(x))
    length = x.shape[dim]
    if mode == "reflect" and length > max(left, right):
        # the same values as F.pad(mode="reflect"), whose CPU kernel is ~2x slower than this copy
        shape = list(x.shape)
        shape[dim] = left + length + right
        padded = x.new_empty(shape)
        inside = padded.narrow(dim, left, length)
        if fill is None:
            inside.copy_(x)
        else:
            fill(x, inside)
        padded.narrow(dim, 0, left).copy_(padded.narrow(dim, left + 1, left).flip(dim))
        padded.narrow(dim, left + length, right).copy_(padded.narrow(dim, left + length - right - 1, right).flip(dim))
        return padded
    if fill is not None:
        x = fill(x, torch.empty_like(x))
    if dim not in (-1, x.dim() - 1):  # short inputs / other modes: F.pad pads the last dim (stays contiguous here)
        return pad1d(x.movedim(dim, -1), left, right, mode).movedim(-1, dim).contiguous()
    if mode != "reflect":
        return F.pad(x, (left, right), mode="constant" if mode == "zero" else mode)
    extra = max(left, right) - length + 1
    x = F.pad(x, (0, extra))
    y = F.pad(x, (left, right), mode="reflect")
    return y[..., : y.shape[-1] - extra]


class SConv1d(nn.Module):
    """Conv1d with EnCodec's "same"-style padding: ceil(T / stride) output frames.

    Non-causal: padding_total = (k - 1) * dilation + 1 - stride, split right = total // 2,
    left = total - right, plus extra right padding so the last window is full.
    x: [B, C_in, T] -> [B, C_out, ceil(T / stride)].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        causal: bool = False,
        norm: str = "weight_norm",
        pad_mode: str = "reflect",
    ):
        super().__init__()
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation, groups=groups, bias=bias)
        if norm == "weight_norm":
            conv = parametrizations.weight_norm(conv)
        elif norm != "none":
            raise ValueError(f"SConv1d norm must be 'weight_norm' or 'none'; got {norm!r}.")
        self.conv = conv
        self.causal = causal
        self.pad_mode = pad_mode

    def padding(self, length: int) -> tuple[int, int]:
        """(left, right) samples of padding for an input of `length` samples."""
        conv = self.conv
        k = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1  # effective kernel size
        stride = conv.stride[0]
        total = k - stride
        n_frames = math.ceil((length - k + total) / stride + 1)
        extra = (n_frames - 1) * stride + (k - total) - length
        if self.causal:
            return total, extra
        right = total // 2
        return total - right, right + extra

    def forward(self, x: Tensor) -> Tensor:
        conv = self.conv
        x = pad1d(x, *self.padding(x.shape[-1]), self.pad_mode)
        if conv.kernel_size[0] == 1 and conv.stride[0] == 1 and conv.groups == 1:  # a matmul; CPU conv1d is slow here
            y = torch.matmul(conv.weight[:, :, 0], x)  # [C_out, C_in] @ [B, C_in, T]
            return y if conv.bias is None else y + conv.bias[:, None]
        return conv(x)

    def forward_time_major(self, x: Tensor, activation: ELU | None = None) -> Tensor:
        """The same conv on time-major activations, for inference: x [B, T, C_in] -> [B, T', C_out], contiguous.
        oneDNN runs channels-last convs without reordering its input and output (~1.5-2.5x faster on CPU at
        audio rates than forward); values equal forward's to fp32 rounding (another summation order).
        `activation` (the ELU before this conv) is applied first, straight into the padded buffer."""
        conv = self.conv
        x = pad1d(x, *self.padding(x.shape[1]), self.pad_mode, dim=1, fill=None if activation is None else activation.into)
        weight = conv.weight  # [C_out, C_in, k] (weight norm applied)
        if weight.shape[-1] == 1 and conv.stride[0] == 1 and conv.groups == 1:
            return F.linear(x, weight[:, :, 0], conv.bias)
        y = F.conv2d(x.transpose(1, 2).unsqueeze(2), weight.unsqueeze(2), conv.bias, stride=(1, conv.stride[0]),
                     dilation=(1, conv.dilation[0]), groups=conv.groups)  # [B, C_out, 1, T'], channels-last
        return y.squeeze(2).transpose(1, 2).contiguous()  # a view, unless oneDNN chose the other layout


def _hooked(module: nn.Module) -> bool:
    """Whether a forward hook sits on `module` or inside it (a precision policy's fp32 island, a user's probe)."""
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def time_major(layers, x: Tensor) -> Tensor:
    """Run SConv1d / SEANetResnetBlock / elementwise layers on time-major activations [B, T, C]; an ELU
    followed by an SConv1d writes straight into that conv's padded input. A layer with forward hooks in it
    runs its plain forward (the fast path calls no hooks), so hooks and fp32 islands still take effect."""
    layers = list(layers)
    i = 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, ELU) and isinstance(nxt, SConv1d) and not (_hooked(layer) or _hooked(nxt)):
            x = nxt.forward_time_major(x, activation=layer)
            i += 2
            continue
        if not hasattr(layer, "forward_time_major"):  # elementwise: any layout
            x = layer(x)
        elif _hooked(layer):
            x = layer(x.transpose(1, 2)).transpose(1, 2).contiguous()
        else:
            x = layer.forward_time_major(x)
        i += 1
    return x


class SEANetResnetBlock(nn.Module):
    """ELU -> conv k3 (dim -> dim // compress) -> ELU -> conv k1 (-> dim), plus a 1x1-conv shortcut
    (identity with true_skip). conv_options go to every SConv1d (causal, norm, pad_mode)."""

    def __init__(self, dim: int, kernel_size: int = 3, dilation: int = 1, compress: int = 2, true_skip: bool = False,
                 *, alpha: float = 1.0, **conv_options):
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(
            ELU(alpha),
            SConv1d(dim, hidden, kernel_size, dilation=dilation, **conv_options),
            ELU(alpha),
            SConv1d(hidden, dim, 1, **conv_options),
        )
        self.shortcut = nn.Identity() if true_skip else SConv1d(dim, dim, 1, **conv_options)

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.block(x)

    def forward_time_major(self, x: Tensor) -> Tensor:
        """Inference on time-major activations x [B, T, C] -> [B, T, C] (see SConv1d.forward_time_major).
        The last 1x1 conv accumulates straight onto the shortcut (one GEMM into its output with both biases):
        no separate sum pass or buffer; equal to forward to fp32 rounding."""
        act, conv, act_out, last = self.block
        h = conv.forward_time_major(x, activation=act)  # [B, T, C / compress]
        h = act_out.into(h, torch.empty_like(h))
        w, b = last.conv.weight[:, :, 0], last.conv.bias  # the last conv is 1x1 (see __init__)
        if isinstance(self.shortcut, nn.Identity):
            y = x.clone() if b is None else torch.add(x, b)
        else:
            sc = self.shortcut.conv
            bias = sc.bias if b is None else (b if sc.bias is None else sc.bias + b)
            y = F.linear(x, sc.weight[:, :, 0], bias)
        y2d = y.view(-1, y.shape[-1])
        y2d.addmm_(h.reshape(-1, h.shape[-1]).to(y.dtype), w.t().to(y.dtype))
        return y


class SLSTM(nn.Module):
    """Unidirectional LSTM over time with a skip connection. x: [B, C, T] -> [B, C, T]."""

    def __init__(self, dim: int, num_layers: int = 2, skip: bool = True):
        super().__init__()
        self.skip = skip
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: Tensor) -> Tensor:
        h = x.permute(2, 0, 1)  # [T, B, C]
        y, _ = self.lstm(h)
        if self.skip:
            y = y + h
        return y.permute(1, 2, 0)  # [B, C, T]


class SEANetEncoder(nn.Module):
    """SEANet encoder: waveform [B, channels, T] -> latent [B, dimension, ceil(T / hop)].

    strides: downsampling factors in the order they are applied (first = nearest the waveform);
    EnCodec's `ratios` are the reverse of this. hop = prod(strides). Each stage: residual block(s)
    at width w, ELU, strided conv (kernel 2 * stride) to 2w. Then an LSTM (lstm layers, 0 = none),
    ELU and a final conv to `dimension`. conv_options go to every SConv1d (causal, norm, pad_mode).
    """

    def __init__(
        self,
        channels: int = 1,
        dimension: int = 512,
        n_filters: int = 32,  # width of the first stage, doubled by each strided conv
        strides: Sequence[int] = (4, 5, 5, 6),
        n_residual_layers: int = 1,  # residual blocks per stage
        kernel_size: int = 7,  # the first conv's
        last_kernel_size: int = 7,  # the final conv's
        residual_kernel_size: int = 3,
        dilation_base: int = 2,  # residual block j of a stage dilates by dilation_base ** j
        compress: int = 2,  # residual blocks' hidden width: width // compress
        true_skip: bool = False,  # residual shortcut: identity (True) or a 1x1 conv
        lstm: int = 2,
        *,
        alpha: float = 1.0,  # the ELUs'
        chunk_elements: int = 1 << 21,  # without autograd the conv stack runs on pieces of about this many floats
        **conv_options,
    ):
        super().__init__()
        self.chunk_elements = chunk_elements
        self.strides = tuple(int(s) for s in strides)
        self.hop_length = math.prod(self.strides)
        width = n_filters
        layers: list[nn.Module] = [SConv1d(channels, width, kernel_size, **conv_options)]
        for stride in self.strides:
            for j in range(n_residual_layers):
                layers.append(SEANetResnetBlock(width, residual_kernel_size, dilation_base**j, compress, true_skip,
                                                alpha=alpha, **conv_options))
            layers += [ELU(alpha), SConv1d(width, width * 2, stride * 2, stride=stride, **conv_options)]
            width *= 2
        self._num_conv_layers = len(layers)  # everything before the LSTM: the high-rate conv stack
        if lstm:
            layers.append(SLSTM(width, lstm))
        layers += [ELU(alpha), SConv1d(width, dimension, last_kernel_size, **conv_options)]
        self.model = nn.Sequential(*layers)

    def receptive_field(self, stop: int | None = None) -> int:
        """Input samples one output frame of the conv stack (of its layers before `stop`) can see (a bound:
        kernels and dilations at each layer's input rate)."""
        field, rate = 1, 1
        for layer in self.model[: self._num_conv_layers if stop is None else stop].modules():
            if isinstance(layer, SConv1d):
                conv = layer.conv
                field += (conv.kernel_size[0] - 1) * conv.dilation[0] * rate
                rate *= conv.stride[0]
        return field

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, channels, T] -> [B, dimension, ceil(T / hop)].

        Without autograd the high-rate conv stack runs on pieces, so its activations stay under about
        `chunk_elements` floats whatever the input: a large batch a few items at a time, and a long
        item in windows along time with a margin of at least its receptive field on each side
        (frames near a window's edge are dropped: each kept frame saw exactly what it sees in one
        pass), on time-major activations (`conv_stack`). The LSTM and the last conv then run on the whole
        [B, C, T / hop] latent. With autograd (training) it is the plain module stack. The default (2M floats,
        8 MB) is also the fast size on CPU: a 10 s clip at 24 kHz encodes ~1.4x faster in 65k-sample windows
        than in one pass, whose 30 MB activations fall out of cache and fault in fresh pages."""
        if torch.is_grad_enabled():
            return self.model(x)
        rest = self.model[self._num_conv_layers :]
        per_item = self.model[0].conv.out_channels * x.shape[-1]
        if x.shape[0] * per_item <= self.chunk_elements:
            return rest(self.conv_stack(x))
        if per_item <= self.chunk_elements:
            items = max(1, self.chunk_elements // per_item)
            return rest(torch.cat([self.conv_stack(c) for c in x.split(items)]))  # [B, C, T / hop]
        return rest(torch.cat([self._convs_in_windows(item[None]) for item in x]))

    def conv_stack(self, x: Tensor) -> Tensor:
        """The high-rate conv stack for inference, on time-major activations inside (SConv1d.forward_time_major):
        x [B, channels, T] -> [B, C, ceil(T / hop)]."""
        return time_major(self.model[: self._num_conv_layers], x.transpose(1, 2)).transpose(1, 2)

    def stream(self) -> "SEANetEncoderStream":
        """A stateful encoder over audio pushed in chunks (equal to `forward` on the whole signal)."""
        return SEANetEncoderStream(self)

    def _margin(self, stop: int | None = None) -> int:
        """The receptive field in samples of the conv stack (of its layers before `stop`), rounded up to a multiple
        of their hop (windows must start on a frame)."""
        hop = self._hop(stop)
        return -(-self.receptive_field(stop) // hop) * hop

    def _hop(self, stop: int | None = None) -> int:
        """Samples per frame after the conv stack's layers before `stop` (all: hop_length)."""
        layers = self.model[: self._num_conv_layers if stop is None else stop]
        return math.prod(m.conv.stride[0] for m in layers.modules() if isinstance(m, SConv1d))

    def _windowed_layers(self, length: int) -> int:
        """How many of the conv stack's layers run in windows for an item of `length` samples: up to the first
        strided conv whose output (channels x frames) fits in `chunk_elements`; the rest runs in one pass (fewer,
        larger calls: oneDNN reorders each conv's weights once per call)."""
        rate = 1
        for i, layer in enumerate(self.model[: self._num_conv_layers]):
            if isinstance(layer, SConv1d) and layer.conv.stride[0] > 1:
                rate *= layer.conv.stride[0]
                if layer.conv.out_channels * -(-length // rate) <= self.chunk_elements:
                    return i + 1
        return self._num_conv_layers

    def _convs_in_windows(self, x: Tensor) -> Tensor:
        """One item [1, channels, T] through the conv stack -> [1, C, ceil(T / hop)]: the high-rate layers in
        overlapping windows (receptive-field margins, kept frames aligned to their hop), the rest in one pass."""
        length = x.shape[-1]
        split = self._windowed_layers(length)
        head, tail = self.model[:split], self.model[split : self._num_conv_layers]
        hop, margin = self._hop(split), self._margin(split)
        width = self.model[0].conv.out_channels
        step = max(hop, (self.chunk_elements // width) // hop * hop - 2 * margin)  # kept samples per window
        n_frames = -(-length // hop)
        xt = x.transpose(1, 2)  # [1, T, channels]
        out = []
        for start in range(0, length, step):  # start, step: multiples of hop, so frames align
            lo, hi = max(0, start - margin), min(length, start + step + margin)
            y = time_major(head, xt[:, lo:hi])  # [1, ceil((hi - lo) / hop), C]
            first = (start - lo) // hop
            keep = min(step // hop, n_frames - start // hop)
            out.append(y[:, first : first + keep])
        return time_major(tail, torch.cat(out, dim=1)).transpose(1, 2)


class SEANetEncoderStream:
    """`SEANetEncoder.stream()`: push audio [B, channels, t] in chunks, get latent frames [B, D, k] as
    soon as no later sample can change them; `flush()` at the end. The same computation as `forward`:
    the conv stack runs on windows with a receptive-field margin (frames near a window's right edge
    wait for more audio), the LSTM carries its (h, c) state, and the last conv (kernel k, stride 1)
    waits for its k // 2 frames of right context; the signal's two ends are reflect-padded as offline.
    Lookahead: `lookahead_samples` (margin + (k // 2) * hop)."""

    def __init__(self, encoder: SEANetEncoder):
        n = encoder._num_conv_layers
        tail = list(encoder.model[n:])
        if not (len(tail) == 3 and isinstance(tail[0], SLSTM) and isinstance(tail[1], nn.ELU)
                and isinstance(tail[2], SConv1d) and tail[2].conv.stride[0] == 1 and not tail[2].causal):
            raise ValueError("Streaming needs a SEANet encoder whose conv stack ends in LSTM, ELU and a stride-1 conv.")
        self.convs, (self.lstm, self.elu, self.last) = encoder.conv_stack, tail
        self.hop, self.margin = encoder.hop_length, encoder._margin()
        k = (self.last.conv.kernel_size[0] - 1) * self.last.conv.dilation[0] + 1
        self.context = (k - 1) // 2  # frames each side (the offline pad: (k - 1) - (k - 1) // 2 left, (k - 1) // 2 right)
        self.left = (k - 1) - self.context
        self.lookahead_samples = self.margin + self.context * self.hop
        self.audio: Tensor | None = None  # samples from `audio_start` on
        self.audio_start = 0
        self.total = 0  # samples pushed
        self.next_frame = 0  # first conv-stack frame not yet computed
        self.state = None  # the LSTM's (h, c)
        self.post: Tensor | None = None  # LSTM + ELU frames from `post_start` on [B, C, m]
        self.post_start = 0
        self.emitted = 0  # output frames returned so far

    def _conv_frames(self, final: bool) -> Tensor | None:
        """Conv-stack frames now final (all remaining ones if `final`)."""
        n_frames = -(-self.total // self.hop) if final else max(0, (self.total - self.margin) // self.hop)
        if n_frames <= self.next_frame:
            return None
        lo = max(0, self.next_frame * self.hop - self.margin)
        y = self.convs(self.audio[..., lo - self.audio_start :])  # [B, C, frames of the window]
        first = (self.next_frame * self.hop - lo) // self.hop
        frames = y[..., first : first + n_frames - self.next_frame]
        self.next_frame = n_frames
        keep_from = max(0, self.next_frame * self.hop - self.margin)  # the next window's first sample
        self.audio = self.audio[..., keep_from - self.audio_start :]
        self.audio_start = keep_from
        return frames

    def _outputs(self, frames: Tensor | None, final: bool) -> Tensor:
        if frames is not None:
            h = frames.permute(2, 0, 1)  # [T, B, C]
            y, self.state = self.lstm.lstm(h, self.state)
            y = self.elu((y + h if self.lstm.skip else y).permute(1, 2, 0))  # [B, C, T]
            self.post = y if self.post is None else torch.cat([self.post, y], dim=-1)
        if self.post is None:
            raise ValueError("SEANet stream: no audio was pushed.")
        available = self.post_start + self.post.shape[-1]
        end = available if final else available - self.context  # output frames [emitted, end) are final
        if end <= self.emitted:
            return self.post.new_zeros(self.post.shape[0], self.last.conv.out_channels, 0)
        stop = end + (0 if final else self.context) - self.post_start
        if self.emitted < self.left:  # the first frames' left context is the reflect-padded start (post_start is 0)
            window = pad1d(self.post[..., :stop], self.left, self.context if final else 0, self.last.pad_mode)
            window = window[..., self.emitted :]
        else:
            window = self.post[..., self.emitted - self.left - self.post_start : stop]
            window = pad1d(window, 0, self.context if final else 0, self.last.pad_mode)
        out = self.last.conv(window)  # [B, D, end - emitted]
        self.emitted = end
        keep_from = max(0, self.emitted - self.left)
        self.post = self.post[..., keep_from - self.post_start :]
        self.post_start = keep_from
        return out

    def push(self, x: Tensor) -> Tensor:
        """x [B, channels, t] -> latent frames now final [B, D, k] (k may be 0)."""
        with torch.inference_mode():
            self.audio = x if self.audio is None else torch.cat([self.audio, x], dim=-1)
            self.total += x.shape[-1]
            frames = self._conv_frames(final=False)
            if frames is None and self.post is None:
                return x.new_zeros(x.shape[0], self.last.conv.out_channels, 0)
            return self._outputs(frames, final=False)

    def flush(self) -> Tensor:
        """The remaining latent frames [B, D, k]; the stream ends here."""
        if self.audio is None:
            raise ValueError("SEANet stream: nothing to flush (push audio first).")
        with torch.inference_mode():
            return self._outputs(self._conv_frames(final=True), final=True)
