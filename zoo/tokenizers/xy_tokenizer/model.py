"""XY-Tokenizer: a 1 kbps speech codec with a semantic (Whisper) and an acoustic tower.

Paper: "XY-Tokenizer: Mitigating the Semantic-Acoustic Conflict in Low-Bitrate Speech Codecs",
Gong et al., arXiv 2506.23325. Upstream: github.com/gyt1145028706/XY-Tokenizer (Apache-2.0, read at
commit 5df5609) and its copy inside github.com/OpenMOSS/MOSS-TTSD (`XY_Tokenizer/`, Apache-2.0), the
codec of MOSS-TTSD. Written anew from the paper and a reading of that code; nothing is copied.
This module: the config and the tokenizer; `convert.py` reads the official checkpoints,
`variants.py` is the catalogue, `stream.py` the chunked encoder and decoder.

    wav 16 kHz -> Whisper log-mel (100 Hz, 80 bins)
      -> semantic encoder (Whisper-style) -> semantic adapter --+
      -> acoustic encoder (Whisper-style) ----------------------+-> concat -> pre-RVQ adapter (50 Hz)
      -> gated down-conv x4 (12.5 Hz) -> weight-normed 1x1 in -> 8-layer RVQ (1024 codes) ...
    ids [B, 8, T] at 12.5 Hz
      -> codebook sum -> weight-normed 1x1 out -> post-RVQ adapter -> transposed conv x4 (50 Hz)
      -> acoustic decoder (Whisper-style, 100 Hz mel-like features) -> Vocos iSTFT (16/24/32 kHz)

Behaviour kept from the official code (see models/xy_tokenizer/NOTES.md):
- The log-mel is that of the clip zero-padded to the 30 s window, normalised by its own maximum.
  By default we pad only as far as the valid frames need (`full_window=False`); the codes are the
  same and the latents equal to float rounding, because every stage masks padded frames.
- Codes per item: `num_samples // 1280` (floor), as the official `encode()`.
- Clips longer than 30 s: windows of 30 s with a hop of 20 s; each window contributes the codes
  of its first 20 s (the official `overlap_seconds=10` policy), so the token stream has no gap and
  no repeat. Decoding runs windows of 375 codes with a hop of 250 and keeps 250 codes' worth of audio.
- A batch is decoded as the official code does: codes padded with 0 to the longest item and masked
  by `Tokens.lengths`; the Vocos convolutions see the padded frames, so the last ~20 ms of a shorter
  item depend (slightly) on the batch it was decoded in, exactly as upstream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.api import Tokenizer, TokenizerOutput, Tokens, config_from_dict, inference
from zoo.inputs import pad_clips, prepare_audio
from zoo.blocks.attention import Attention
from zoo.blocks.mlp import Mlp
from zoo.blocks.vocos import ISTFTHead, VocosBackbone
from zoo.quantizers.vq import ResidualVQ

from .stream import XYDecoderStream, XYEncoderStream

PAPER = "arXiv:2506.23325"
UPSTREAM = "https://github.com/gyt1145028706/XY-Tokenizer"


# ----------------------------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StackConfig:
    """One Whisper-style transformer stack (pre-LN, bidirectional, sinusoidal positions).

    For the encoders input_dim is the mel bins (a conv stem brings it to dim); for the acoustic
    decoder output_dim is the mel-like feature count (transposed convs bring dim to it). For the
    adapters a Linear maps input_dim -> dim when they differ, and dim -> output_dim after the stack.
    """

    input_dim: int = 768
    dim: int = 768
    output_dim: int = 768
    layers: int = 12
    heads: int = 12
    ffn_dim: int = 3072  # hidden width of each layer's GELU MLP
    max_positions: int = 1500  # rows of the sinusoid table (30 s at 50 Hz; 375 at 12.5 Hz)


@dataclass(frozen=True)
class XYTokenizerConfig:
    """Defaults: the released fdugyt/XY_Tokenizer (16 kHz in and out, 8 x 1024 codes at 12.5 Hz)."""

    sample_rate: int = 16000  # input rate (all variants)
    output_sample_rate: int = 16000  # decoded rate: 16000, 24000 or 32000 (follows vocos_hop)
    n_mels: int = 80
    mel_n_fft: int = 400
    mel_hop: int = 160  # 100 Hz features
    window_seconds: int = 30  # the Whisper window: longest clip one encoder pass sees
    window_hop_seconds: int = 20  # long clips: each window keeps this many seconds of codes
    conv_stride: int = 2  # encoder stem / decoder transposed-conv stride (100 <-> 50 Hz)
    semantic_encoder: StackConfig = StackConfig(80, 768, 768, 12, 12, 3072, 1500)
    semantic_adapter: StackConfig = StackConfig(768, 768, 768, 4, 12, 3072, 1500)
    acoustic_encoder: StackConfig = StackConfig(80, 768, 768, 12, 12, 3072, 1500)
    pre_rvq_adapter: StackConfig = StackConfig(1536, 768, 768, 4, 12, 3072, 1500)
    downsample: int = 4  # gated down-conv factor (50 -> 12.5 Hz); width pre_rvq.output_dim * 4
    rvq_dim: int = 512  # RVQ width after the weight-normed input projection
    num_quantizers: int = 8
    codebook_size: int = 1024
    post_rvq_adapter: StackConfig = StackConfig(3072, 768, 3072, 4, 12, 3072, 375)
    upsample: int = 4  # transposed conv (12.5 -> 50 Hz), 3072 -> 768
    acoustic_decoder: StackConfig = StackConfig(768, 768, 80, 12, 12, 3072, 1500)
    vocos_dim: int = 512
    vocos_intermediate_dim: int = 4096
    vocos_layers: int = 30
    vocos_n_fft: int = 640
    vocos_hop: int = 160  # samples per decoder frame (100 Hz) at output_sample_rate

    def __post_init__(self):
        stacks = ("semantic_encoder", "semantic_adapter", "acoustic_encoder", "pre_rvq_adapter", "post_rvq_adapter", "acoustic_decoder")
        for name in stacks:
            s = getattr(self, name)
            if isinstance(s, Mapping):  # built from JSON
                s = config_from_dict(StackConfig, s)
                object.__setattr__(self, name, s)
            if not isinstance(s, StackConfig):
                raise TypeError(f"XYTokenizerConfig.{name} must be a StackConfig or a dict; got {type(s).__name__}.")
            if s.dim % s.heads:
                raise ValueError(f"XYTokenizerConfig.{name}: dim={s.dim} is not divisible by heads={s.heads}.")
        checks = [
            (self.semantic_encoder.input_dim == self.n_mels, "semantic_encoder.input_dim must equal n_mels"),
            (self.acoustic_encoder.input_dim == self.n_mels, "acoustic_encoder.input_dim must equal n_mels"),
            (self.semantic_adapter.input_dim == self.semantic_encoder.dim, "semantic_adapter.input_dim must equal semantic_encoder.dim"),
            (
                self.pre_rvq_adapter.input_dim == self.semantic_adapter.output_dim + self.acoustic_encoder.dim,
                "pre_rvq_adapter.input_dim must equal semantic_adapter.output_dim + acoustic_encoder.dim",
            ),
            (
                self.post_rvq_adapter.input_dim == self.code_dim,
                "post_rvq_adapter.input_dim must equal pre_rvq_adapter.output_dim * downsample",
            ),
            (
                self.post_rvq_adapter.output_dim == self.acoustic_decoder.dim * self.upsample,
                "post_rvq_adapter.output_dim must equal acoustic_decoder.dim * upsample",
            ),
            (self.acoustic_decoder.output_dim == self.n_mels, "acoustic_decoder.output_dim must equal n_mels (the vocoder input)"),
            (self.window_hop_seconds <= self.window_seconds, "window_hop_seconds must not exceed window_seconds"),
            (
                self.output_sample_rate * self.samples_per_code == self.sample_rate * self.output_samples_per_code,
                "output_sample_rate must equal sample_rate * (vocos_hop * conv_stride * upsample) / 1280",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"Inconsistent XYTokenizerConfig: {msg}.")

    # derived sizes -------------------------------------------------------------------------------
    @property
    def code_dim(self) -> int:
        return self.pre_rvq_adapter.output_dim * self.downsample

    @property
    def samples_per_code(self) -> int:
        """Input samples per code frame (1280 at 16 kHz: 80 ms)."""
        return self.mel_hop * self.conv_stride * self.downsample

    @property
    def output_samples_per_code(self) -> int:
        return self.vocos_hop * self.conv_stride * self.upsample

    @property
    def window_samples(self) -> int:
        return self.window_seconds * self.sample_rate

    @property
    def window_codes(self) -> int:
        return self.window_samples // self.samples_per_code

    @property
    def hop_codes(self) -> int:
        return self.window_hop_seconds * self.sample_rate // self.samples_per_code


# ----------------------------------------------------------------------------------------------
# feature extractor: Whisper log-mel, written with torch.stft and a slaney mel filterbank
# ----------------------------------------------------------------------------------------------
_F_SP, _MIN_LOG_HZ, _MIN_LOG_MEL, _LOGSTEP = 200.0 / 3, 1000.0, 15.0, math.log(6.4) / 27.0


def _hz_to_mel_slaney(f: float) -> float:
    return _MIN_LOG_MEL + math.log(f / _MIN_LOG_HZ) / _LOGSTEP if f >= _MIN_LOG_HZ else f / _F_SP


def _mel_to_hz_slaney(m: Tensor) -> Tensor:
    return torch.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * torch.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), m * _F_SP)


def slaney_mel_filters(n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None) -> Tensor:
    """Triangular slaney-scale, slaney-normalised mel filters [n_freqs, n_mels] (librosa / Whisper),
    computed in float64 and returned as float32."""
    f_max = sample_rate / 2 if f_max is None else f_max
    mel = torch.linspace(_hz_to_mel_slaney(f_min), _hz_to_mel_slaney(f_max), n_mels + 2, dtype=torch.float64)
    edges = _mel_to_hz_slaney(mel)  # [n_mels + 2] Hz
    fft_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    diff = edges[1:] - edges[:-1]
    slopes = edges[None, :] - fft_freqs[:, None]  # [n_freqs, n_mels + 2]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    fb = torch.clamp(torch.minimum(down, up), min=0.0)
    fb = fb * (2.0 / (edges[2:] - edges[:-2]))[None, :]
    return fb.float()


class WhisperLogMel(nn.Module):
    """wav [B, L] (zero beyond each length) -> log-mel [B, n_mels, L // hop], Whisper's normalisation:
    log10(max(power, 1e-10)), floored at (per-item max - 8), then (x + 4) / 4.

    The per-item maximum runs over every frame computed, so callers must pass enough trailing zeros
    for the frames that overlap the signal (XYTokenizer._window_batch does).
    """

    def __init__(self, n_mels: int = 80, n_fft: int = 400, hop: int = 160, sample_rate: int = 16000):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("filters", slaney_mel_filters(n_fft // 2 + 1, n_mels, sample_rate), persistent=False)

    def forward(self, wav: Tensor) -> Tensor:
        stft = torch.stft(wav, self.n_fft, self.hop, window=self.window, return_complex=True)  # [B, F, L/hop + 1]
        power = stft[..., :-1].abs() ** 2  # drop the last frame, as Whisper
        mel = self.filters.T @ power  # [B, n_mels, frames]
        log = torch.clamp(mel, min=1e-10).log10()
        peak = log.amax(dim=(1, 2), keepdim=True)
        return (torch.maximum(log, peak - 8.0) + 4.0) / 4.0


# ----------------------------------------------------------------------------------------------
# transformer stacks
# ----------------------------------------------------------------------------------------------
def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> Tensor:
    """Whisper's positional table [length, channels]: [sin | cos] with geometric timescales."""
    inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2))
    t = torch.arange(length)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


class TransformerLayer(Mlp):
    """Pre-LN block: x + attn(LN(x)); x + mlp(LN(x)), the GELU MLP inherited, so that its fc1 / fc2 sit
    at the layer's top level as in Whisper and in our saved checkpoints."""

    def __init__(self, dim: int, heads: int, ffn_dim: int):
        super().__init__(dim, ffn_dim)
        self.self_attn = Attention(dim, heads, layout="whisper", k_bias=False)  # Whisper: k_proj without bias
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, key_bias: Tensor) -> Tensor:
        # key_bias: [B, 1, 1, T], 0 for valid keys and finfo.min for padded ones (a finite bias, as
        # upstream, so a fully padded item stays finite instead of NaN)
        x = x + self.self_attn(self.self_attn_layer_norm(x), key_bias)
        return x + super().forward(self.final_layer_norm(x))


def _masks(lengths: Tensor, t: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """lengths [B] -> (valid [B, T, 1] bool, additive key bias [B, 1, 1, T])."""
    valid = torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]  # [B, T]
    bias = torch.zeros(valid.shape, dtype=dtype, device=lengths.device).masked_fill(~valid, torch.finfo(dtype).min)
    return valid[:, :, None], bias[:, None, None, :]


class Stack(nn.Module):
    """Positions + layers + final LayerNorm; padded frames zeroed at the end. x: [B, T, D] -> [B, T, D]."""

    def __init__(self, cfg: StackConfig):
        super().__init__()
        self.register_buffer("positional_embedding", sinusoids(cfg.max_positions, cfg.dim))
        self.layers = nn.ModuleList(TransformerLayer(cfg.dim, cfg.heads, cfg.ffn_dim) for _ in range(cfg.layers))
        self.layer_norm = nn.LayerNorm(cfg.dim)

    def run(self, x: Tensor, lengths: Tensor) -> Tensor:
        t = x.shape[1]
        if t > self.positional_embedding.shape[0]:
            raise ValueError(f"A stack with {self.positional_embedding.shape[0]} positions got {t} frames; windows are at most 30 s.")
        x = x + self.positional_embedding[:t]
        valid, bias = _masks(lengths, t, x.dtype)
        for layer in self.layers:
            x = layer(x, bias)
        return torch.where(valid, self.layer_norm(x), 0.0)


class AudioEncoder(Stack):
    """Whisper encoder: conv k3 + GELU, conv k3 stride 2 + GELU, stack. mel [B, M, T] -> [B, D, T/2]."""

    def __init__(self, cfg: StackConfig, stride: int = 2):
        super().__init__(cfg)
        self.stride = stride
        self.conv1 = nn.Conv1d(cfg.input_dim, cfg.dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(cfg.dim, cfg.dim, kernel_size=3, stride=stride, padding=1)

    def forward(self, mel: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        h = F.gelu(self.conv2(F.gelu(self.conv1(mel))))  # [B, D, T/2]
        lengths = lengths // self.stride
        return self.run(h.transpose(1, 2), lengths).transpose(1, 2), lengths


class Adapter(Stack):
    """Optional Linear in, stack, optional Linear out (applied after the padding mask, as upstream).
    x: [B, Din, T] -> [B, Dout, T]."""

    def __init__(self, cfg: StackConfig):
        super().__init__(cfg)
        self.proj = nn.Linear(cfg.input_dim, cfg.dim) if cfg.input_dim != cfg.dim else None
        self.out_proj = nn.Linear(cfg.dim, cfg.output_dim) if cfg.output_dim != cfg.dim else None

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h = x.transpose(1, 2)  # [B, T, Din]
        if self.proj is not None:
            h = self.proj(h)
        h = self.run(h, lengths)
        if self.out_proj is not None:
            h = self.out_proj(h)
        return h.transpose(1, 2)


class AudioDecoder(Stack):
    """Stack at 50 Hz, then transposed convs (k3 s2 + GELU, k3 s1 + GELU) to 100 Hz features,
    trimmed to exactly stride * T. x: [B, D, T] -> [B, n_mels, 2T]."""

    def __init__(self, cfg: StackConfig, stride: int = 2):
        super().__init__(cfg)
        self.stride = stride
        self.deconv1 = nn.ConvTranspose1d(cfg.dim, cfg.dim, kernel_size=3, stride=stride)
        self.deconv2 = nn.ConvTranspose1d(cfg.dim, cfg.output_dim, kernel_size=3, stride=1)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        t = x.shape[-1]
        h = self.run(x.transpose(1, 2), lengths).transpose(1, 2)  # [B, D, T]
        h = F.gelu(self.deconv2(F.gelu(self.deconv1(h))))
        return h[:, :, : t * self.stride]


class GatedDownConv(nn.Module):
    """50 -> 12.5 Hz: LayerNorm(W(silu(conv_g x) * conv_u x) + stack-of-4-frames(x)).
    x: [B, D, T] (T a multiple of `factor`) -> [B, D * factor, T / factor]."""

    def __init__(self, dim: int, factor: int):
        super().__init__()
        self.factor = factor
        width = dim * factor
        self.gate_proj = nn.Conv1d(dim, width, factor, factor, bias=False)
        self.up_proj = nn.Conv1d(dim, width, factor, factor, bias=False)
        self.down_proj = nn.Linear(width, width, bias=False)
        self.layer_norm = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        b, d, t = x.shape
        if t % self.factor:  # pad time (upstream pads channels here, harmless only at T=1500)
            x = F.pad(x, (0, self.factor - t % self.factor))
        g = self.gate_proj(x).transpose(1, 2)  # [B, T/4, 4D]
        u = self.up_proj(x).transpose(1, 2)
        stacked = x.transpose(1, 2).reshape(b, -1, d * self.factor)  # [B, T/4, 4D]: 4 frames side by side
        return self.layer_norm(self.down_proj(F.silu(g) * u) + stacked).transpose(1, 2)


class UpConv(nn.Module):
    """12.5 -> 50 Hz transposed conv (kernel = stride). x: [B, D * s, T] -> [B, D, T * s]."""

    def __init__(self, dim: int, factor: int):
        super().__init__()
        self.up_conv = nn.ConvTranspose1d(dim * factor, dim, kernel_size=factor, stride=factor, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.up_conv(x)


def _wn_conv1x1(cin: int, cout: int) -> nn.Conv1d:
    """1x1 conv with weight norm (g per output channel), the parametrization form of upstream's
    `torch.nn.utils.weight_norm` (weight_g -> original0, weight_v -> original1)."""
    return nn.utils.parametrizations.weight_norm(nn.Conv1d(cin, cout, kernel_size=1))


# ----------------------------------------------------------------------------------------------
# the tokenizer
# ----------------------------------------------------------------------------------------------
class XYTokenizer(Tokenizer):
    """XY-Tokenizer: mono speech -> ids [B, 8, T] at 12.5 Hz (layout "rvq") -> audio.

    encode(audio [B, 1, T] float, sample_rate=, lengths=None) or encode([clip [1, T] or [T], ...],
    sample_rate=): Tokens with ids [B, Q, T_max] (0 beyond each item), lengths [B] in code frames
    (num_samples // 1280), meta num_samples / sample_rate.
    decode(tokens) -> audio [B, 1, T_out] at `output_sample_rate`: a padded batch, zero beyond
    item i's `lengths[i] * output_samples_per_code` samples (see `output_lengths`).
    """

    family = "xy_tokenizer"
    fp32_modules = ("mel", "quantizer_in", "rvq", "quantizer_out", "head")  # precision policy: the Whisper log-mel front end; RVQ with its projections; the iSTFT head stay fp32
    modality = "audio"
    config_class = XYTokenizerConfig

    def __init__(self, cfg: XYTokenizerConfig = XYTokenizerConfig()):
        super().__init__(cfg)
        self.mel = WhisperLogMel(cfg.n_mels, cfg.mel_n_fft, cfg.mel_hop, cfg.sample_rate)
        self.semantic_encoder = AudioEncoder(cfg.semantic_encoder, cfg.conv_stride)
        self.semantic_encoder_adapter = Adapter(cfg.semantic_adapter)
        self.acoustic_encoder = AudioEncoder(cfg.acoustic_encoder, cfg.conv_stride)
        self.pre_rvq_adapter = Adapter(cfg.pre_rvq_adapter)
        self.downsample = GatedDownConv(cfg.pre_rvq_adapter.output_dim, cfg.downsample)
        self.quantizer_in = _wn_conv1x1(cfg.code_dim, cfg.rvq_dim)
        # EMA codebooks as upstream: decay 0.99, k-means init (10 iterations), dead codes below 2 uses
        # restarted, commitment weight 1; plain Euclidean nearest neighbour, no per-layer projection.
        self.rvq = ResidualVQ(
            cfg.rvq_dim, cfg.num_quantizers, cfg.codebook_size, ema_decay=0.99, kmeans_init=True, kmeans_iters=10,
            dead_code_threshold=2.0, commitment_weight=1.0, eps=1e-5,
        )
        self.quantizer_out = _wn_conv1x1(cfg.rvq_dim, cfg.code_dim)
        self.post_rvq_adapter = Adapter(cfg.post_rvq_adapter)
        self.upsample = UpConv(cfg.acoustic_decoder.dim, cfg.upsample)
        self.acoustic_decoder = AudioDecoder(cfg.acoustic_decoder, cfg.conv_stride)
        self.vocos = VocosBackbone(cfg.n_mels, cfg.vocos_dim, cfg.vocos_intermediate_dim, cfg.vocos_layers)
        self.head = ISTFTHead(cfg.vocos_dim, cfg.vocos_n_fft, cfg.vocos_hop, padding="same")

    # -- contract properties --------------------------------------------------------------------

    @property
    def num_codebooks(self) -> int:
        return self.cfg.num_quantizers

    @property
    def frame_rate(self) -> float:
        return self.cfg.sample_rate / self.cfg.samples_per_code

    @property
    def token_rate(self) -> float:
        return self.frame_rate * self.cfg.num_quantizers

    @property
    def output_sample_rate(self) -> int:
        return self.cfg.output_sample_rate

    @classmethod
    def config_from_dict(cls, data: Mapping[str, Any]) -> XYTokenizerConfig:
        return config_from_dict(XYTokenizerConfig, data)  # nested stacks are rebuilt in __post_init__

    def example_input(self, batch_size: int = 2, generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
        t = self.cfg.samples_per_code * 6  # 0.48 s
        x = 0.1 * torch.randn(batch_size, 1, t, generator=generator)
        return x, {"sample_rate": self.cfg.sample_rate}

    # -- input handling -------------------------------------------------------------------------
    def _prepare(self, audio, sample_rate, lengths) -> tuple[Tensor, Tensor]:
        """-> (wav [B, T] at the model rate, zero beyond each length; lengths [B])."""
        name = "XYTokenizer"
        if isinstance(audio, (list, tuple)):
            batch, in_lens = pad_clips(audio, lengths, name=name)  # [B, C, max T_i] at the input rate
            clips = [prepare_audio(batch[i : i + 1, :, :n], name=name, sample_rate=sample_rate, model_rate=self.sample_rate)[0, 0]
                     for i, n in enumerate(in_lens)]
            lens = torch.tensor([c.shape[-1] for c in clips])
            wav = batch.new_zeros(len(clips), int(lens.max()))
            for i, c in enumerate(clips):
                wav[i, : c.shape[-1]] = c
            return wav, lens
        x = prepare_audio(audio, name=name, sample_rate=sample_rate, model_rate=self.sample_rate)
        b, t = x.shape[0], x.shape[-1]
        if lengths is None:
            lens = torch.full((b,), t, dtype=torch.long)
        else:
            lens = torch.as_tensor(lengths).reshape(-1)
            if lens.is_floating_point() or lens.numel() != b:
                raise ValueError(f"XYTokenizer.encode: lengths must hold {b} integers (samples per item); got {lengths!r}.")
            lens = lens.long().cpu()
            if sample_rate is not None and int(sample_rate) != self.sample_rate:  # lengths were given at the input rate
                lens = (lens * self.sample_rate + int(sample_rate) // 2) // int(sample_rate)
                lens = lens.clamp(max=t)
            if int(lens.min()) < 1 or int(lens.max()) > t:
                raise ValueError(f"XYTokenizer.encode: lengths must lie in [1, {t}] (the padded length); got {lens.tolist()}.")
        valid = torch.arange(t)[None, :] < lens[:, None]
        return x[:, 0] * valid.to(x.device), lens

    # -- encode ---------------------------------------------------------------------------------
    @inference
    def encode(self, audio, sample_rate: int | None = None, lengths=None, *, full_window: bool = False,
               max_batch: int = 16) -> Tokens:
        """audio [B, 1, T] (+ lengths [B] in samples at `sample_rate`) or a list of clips -> Tokens.

        full_window=True computes every window at its full 30 s as upstream does (same codes,
        slower); the default pads each window only as far as its valid frames need.
        max_batch: windows per encoder pass (memory bound for long clips or big batches).
        """
        wav, lens = self._prepare(audio, sample_rate, lengths)
        cfg = self.cfg
        n_codes = lens // cfg.samples_per_code  # upstream's count: a trailing partial frame is dropped
        if int(n_codes.min()) < 1:
            short = [i for i, n in enumerate(n_codes.tolist()) if n < 1]
            raise ValueError(
                f"XYTokenizer needs at least {cfg.samples_per_code} samples at {cfg.sample_rate} Hz "
                f"({1000 * cfg.samples_per_code / cfg.sample_rate:g} ms, one code frame) per clip; item(s) {short} are shorter."
            )
        wav = wav.to(self.device)
        with torch.inference_mode():
            # every (item, window) pair with audio in it: window w starts at w * hop seconds
            hop = cfg.window_hop_seconds * cfg.sample_rate
            n_win = (lens + hop - 1) // hop  # windows per item (upstream: ceil(len / hop))
            items = torch.repeat_interleave(torch.arange(len(lens)), n_win)
            starts = torch.cat([torch.arange(int(n)) * hop for n in n_win])
            win_lens = torch.clamp(lens[items] - starts, max=cfg.window_samples)
            keep = torch.clamp(win_lens // cfg.samples_per_code, max=cfg.hop_codes)  # codes each window contributes
            ids = torch.zeros(len(lens), cfg.num_quantizers, int(n_codes.max()), dtype=torch.long)
            for s in range(0, len(items), max_batch):
                sl = slice(s, s + max_batch)
                chunk = self._window_batch(wav, items[sl], starts[sl], win_lens[sl], full_window)
                codes = self._encode_windows(chunk, win_lens[sl]).cpu()  # [N, Q, Tq]
                for j, (i, st, k) in enumerate(zip(items[sl].tolist(), starts[sl].tolist(), keep[sl].tolist())):
                    c0 = st // cfg.samples_per_code
                    ids[i, :, c0 : c0 + k] = codes[j, :, :k]
        meta = self.token_meta(sample_rate=cfg.sample_rate, num_samples=lens.tolist(), frame_rate=self.frame_rate)
        return Tokens(ids=ids.to(self.device), layout="rvq", lengths=n_codes.to(self.device), meta=meta)

    def _window_batch(self, wav: Tensor, items: Tensor, starts: Tensor, win_lens: Tensor, full_window: bool) -> Tensor:
        """Cut windows [N, L] (zero beyond each window's length). L is the full 30 s window, or the
        shortest length that keeps every valid frame exact: all STFT frames that touch the signal
        (for the per-clip maximum) plus one frame of the conv stem's context, rounded to a whole
        code frame."""
        cfg = self.cfg
        if full_window:
            width = cfg.window_samples
        else:
            need = int(win_lens.max()) + cfg.mel_n_fft + cfg.mel_hop
            width = min(-(-need // cfg.samples_per_code) * cfg.samples_per_code, cfg.window_samples)
        dev = wav.device
        offs = torch.arange(width, device=dev)
        padded = F.pad(wav, (0, width))  # so every window index is in range
        out = padded[items.to(dev)[:, None], starts.to(dev)[:, None] + offs[None, :]]  # [N, L]
        return out * (offs[None, :] < win_lens.to(dev)[:, None])

    def _encode_windows(self, wav: Tensor, win_lens: Tensor) -> Tensor:
        """wav [N, L] (one window each, L <= 30 s) -> ids [N, Q, L / 1280]."""
        z, _ = self._latent(wav, win_lens.to(wav.device))
        return self.rvq(self.quantizer_in(z).transpose(1, 2)).ids.transpose(1, 2)  # [N, Q, Tq]

    def _latent(self, wav: Tensor, win_lens: Tensor) -> tuple[Tensor, Tensor]:
        """wav [N, L] -> (pre-quantization latent [N, code_dim, L / 1280], valid code frames [N])."""
        mel = self.mel(wav)  # [N, n_mels, L / hop]
        mel_lens = -(-win_lens // self.cfg.mel_hop)  # frames whose centre lies in the signal
        sem, enc_lens = self.semantic_encoder(mel, mel_lens)
        sem = self.semantic_encoder_adapter(sem, enc_lens)
        aco, _ = self.acoustic_encoder(mel, mel_lens)
        h = self.pre_rvq_adapter(torch.cat([sem, aco], dim=1), enc_lens)  # [N, D, T50]
        return self.downsample(h), enc_lens // self.cfg.downsample

    # -- decode ---------------------------------------------------------------------------------
    def output_lengths(self, tokens: Tokens) -> Tensor:
        """Samples of each decoded item at output_sample_rate: lengths * output_samples_per_code."""
        n = tokens.lengths if tokens.lengths is not None else torch.full((tokens.batch_size,), tokens.ids.shape[-1])
        return n.cpu() * self.cfg.output_samples_per_code

    @inference
    def decode(self, tokens: Tokens) -> Tensor:
        """Tokens (layout "rvq", ids [B, Q, T]) -> audio [B, 1, T * samples/code] at output_sample_rate,
        zero beyond each item's `output_lengths`."""
        self.check_tokens(tokens)
        cfg = self.cfg
        if tokens.layout != "rvq" or tokens.ids.dim() != 3:
            raise ValueError(f"XYTokenizer decodes layout 'rvq' ids [B, Q, T]; got layout {tokens.layout!r} with shape {list(tokens.ids.shape)}.")
        if tokens.ids.shape[1] != cfg.num_quantizers:
            raise ValueError(
                f"XYTokenizer decodes all {cfg.num_quantizers} residual layers; got {tokens.ids.shape[1]}. "
                "The released decoder was trained without quantizer dropout, so fewer layers are not supported."
            )
        ids = tokens.ids.to(self.device)
        b, _, t = ids.shape
        lens = tokens.lengths.to(self.device) if tokens.lengths is not None else torch.full((b,), t, device=self.device)
        if int(lens.min()) < 1 or int(lens.max()) > t:
            raise ValueError(f"Tokens.lengths must lie in [1, {t}]; got {lens.tolist()}.")
        spc = cfg.output_samples_per_code
        out = torch.zeros(b, 1, t * spc, device=self.device)
        with torch.inference_mode():
            ids = ids.masked_fill(torch.arange(t, device=ids.device)[None, None, :] >= lens[:, None, None], 0)  # pad with 0, as upstream
            # upstream's schedule: windows of 375 codes every 250; each keeps its first 250 codes' audio
            for start in range(0, t, cfg.hop_codes):
                end = min(start + cfg.window_codes, t)
                w_lens = torch.clamp(lens - start, 0, end - start)
                if int(w_lens.max()) == 0:
                    continue
                keep = min(end - start, cfg.hop_codes)
                y = self._decode_window(ids[:, :, start:end], w_lens)  # [B, (end - start) * spc]
                out[:, 0, start * spc : (start + keep) * spc] = y[:, : keep * spc]
            out = out * (torch.arange(t * spc, device=self.device)[None, None, :] < (lens * spc)[:, None, None])
        return out

    def _decode_window(self, ids: Tensor, lens: Tensor) -> Tensor:
        """ids [B, Q, T] (T <= 375), lens [B] -> audio [B, T * output_samples_per_code]."""
        z = self.quantizer_out(self.rvq.ids_to_quantized(ids.transpose(1, 2)).transpose(1, 2))  # [B, code_dim, T]
        return self._synthesize(z, lens)

    def _synthesize(self, z: Tensor, lens: Tensor) -> Tensor:
        h = self.upsample(self.post_rvq_adapter(z, lens))  # [B, D, 4T]
        feats = self.acoustic_decoder(h, lens * self.cfg.upsample)  # [B, n_mels, 8T]
        return self.head(self.vocos(feats))  # [B, 8T * hop]

    # -- streaming ------------------------------------------------------------------------------
    def stream_encoder(self) -> XYEncoderStream:
        """Encode audio chunk by chunk: `s.push(audio [B, 1, t] at 16 kHz) -> Tokens`, then `s.flush()`.
        Exactly the offline ids: a 30 s window is encoded once all its audio is in (lookahead: one window,
        `s.lookahead_samples`), the rest at flush. No resampling: feed the model's rate."""
        return XYEncoderStream(self)

    def stream_decoder(self) -> XYDecoderStream:
        """Decode tokens chunk by chunk: `s.push(ids [B, Q, n]) -> audio [B, 1, m]`, then `s.flush()`.
        Exactly the offline decode: a window of 375 codes is decoded once all its codes are in."""
        return XYDecoderStream(self)

    # -- training forward -----------------------------------------------------------------------
    def forward(self, audio: Tensor, sample_rate: int | None = None) -> TokenizerOutput:
        """Differentiable pass for clips of at most one window: recon [B, 1, T'] at the output rate
        (T' = T // 1280 * samples/code), tokens, losses {"commitment"}, features: the quantized
        12.5 Hz latent [B, code_dim, T // 1280] after the output projection (what the decoder reads
        and stage 1's ASR alignment looks at; every frame valid). In train mode the codebooks follow
        upstream's EMA / k-means / dead-code rules (zoo.quantizers.vq)."""
        cfg = self.cfg
        if sample_rate is None:
            sample_rate = cfg.sample_rate
        x = prepare_audio(audio, name="XYTokenizer", sample_rate=sample_rate, model_rate=cfg.sample_rate)
        t = x.shape[-1] // cfg.samples_per_code * cfg.samples_per_code
        if t < cfg.samples_per_code or t > cfg.window_samples:
            raise ValueError(f"XYTokenizer.forward takes clips of {cfg.samples_per_code} to {cfg.window_samples} samples; got {x.shape[-1]}.")
        wav = x[:, 0, :t]
        lens = torch.full((wav.shape[0],), t, device=wav.device)
        padded = F.pad(wav, (0, min(cfg.mel_n_fft + cfg.mel_hop, cfg.window_samples - t) // cfg.mel_hop * cfg.mel_hop))
        z, code_lens = self._latent(padded, lens)
        n = t // cfg.samples_per_code
        q = self.rvq(self.quantizer_in(z[:, :, :n]).transpose(1, 2))  # quantized [B, n, rvq_dim], ids [B, n, Q]
        zq = self.quantizer_out(q.quantized.transpose(1, 2))  # [B, code_dim, n]
        frames = torch.full_like(lens, n)
        recon = self._synthesize(zq, frames)
        tokens = Tokens(ids=q.ids.detach().transpose(1, 2), layout="rvq", meta=self.token_meta(sample_rate=cfg.sample_rate))
        return TokenizerOutput(recon=recon[:, None], tokens=tokens, losses=dict(q.losses), metrics=dict(q.metrics),
                               features=zq, feature_lengths=frames)
