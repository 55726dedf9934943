"""WavTokenizer: one codebook of 4096 codes at 40 or 75 tokens per second for 24 kHz audio.

Paper: "WavTokenizer: an Efficient Acoustic Discrete Codec Tokenizer for Audio Language Modeling",
Ji et al., arXiv 2408.16532 (ICLR 2025). Upstream: github.com/jishengpeng/WavTokenizer (MIT),
studied at commit 5cf440d91ac420ca338f117b7003a77450d64730. Written anew from the paper and a
reading of the upstream code; nothing is copied.

    audio [B, 1, T] @ 24 kHz
      -> SEANet encoder (EnCodec convs + 2-layer LSTM)       latent   [B, 512, N], N = ceil(T / hop)
      -> Euclidean VQ, one codebook of 4096 (EMA in training)  ids      [B, N]
      -> codebook rows                                        features [B, 512, N]
      -> Vocos backbone (attention prelude, AdaLayerNorm row 0, 12 ConvNeXt blocks) [B, N, 768]
      -> iSTFT head ("same" padding)                          audio    [B, 1, N * hop], trimmed to T

hop = 600 (40 tokens/s) or 320 (75 tokens/s). The official checkpoints are Lightning `.ckpt`
pickles; `remap_state_dict` keeps the encoder, codebook, backbone and head and drops, by the
explicit `TRAINING_ONLY_PREFIXES` list, the discriminators, the mel-loss buffers and EnCodec's
SEANet *decoder*, which upstream builds and saves but never runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from zoo.api import Tokenizer, TokenizerOutput, Tokens, inference
from zoo.inputs import pad_clips, prepare_audio
from zoo.blocks.seanet import SLSTM, SEANetEncoder
from zoo.blocks.vocos import ISTFTHead, VocosBackbone
from zoo.quantizers.vq import VectorQuantizer
from zoo.streaming import OverlapAddDecoder

PAPER = "arXiv:2408.16532"
UPSTREAM = "https://github.com/jishengpeng/WavTokenizer"
LICENSE = "mit"


@dataclass(frozen=True)
class WavTokenizerConfig:
    """Defaults = wavtokenizer-small-40tps (and large-unify-40tps: same architecture)."""

    sample_rate: int = 24000
    strides: tuple[int, ...] = (4, 5, 5, 6)  # encoder downsampling in order of application; hop = prod
    encoder_filters: int = 32  # SEANet width of the first stage (doubles at every stride)
    encoder_dim: int = 512  # latent, codebook and backbone-input width
    encoder_residual_layers: int = 1  # SEANet residual blocks per stage
    encoder_lstm_layers: int = 2  # LSTM layers after the last stride (0 = none)
    codebook_size: int = 4096
    backbone_dim: int = 768
    backbone_intermediate_dim: int = 2304  # ConvNeXt MLP width
    backbone_layers: int = 12  # ConvNeXt blocks
    adanorm_num_embeddings: int | None = 4  # AdaLayerNorm rows (None: plain LayerNorm)
    bandwidth_id: int = 0  # the AdaLayerNorm row used at inference (upstream always passes 0)
    attention_prelude: bool = True  # ResNet/attention `pos_net` before the ConvNeXt blocks
    num_groups: int = 32  # GroupNorm groups in the prelude
    n_fft: int = 2400  # iSTFT size (4 * hop upstream); window = n_fft, hop = encoder hop
    # training only
    ema_decay: float = 0.99  # codebook EMA decay
    kmeans_iters: int = 200  # k-means on the first training batch
    dead_code_threshold: float = 2.0  # EMA usage below which a code is restarted
    commitment_weight: float = 1000.0  # upstream weights the commitment MSE by 1000 in the generator loss
    dropout: float = 0.1  # prelude ResNet dropout

    @property
    def hop_length(self) -> int:
        return math.prod(self.strides)

    def __post_init__(self):
        if not self.strides or any(int(s) < 1 for s in self.strides):
            raise ValueError(f"WavTokenizerConfig.strides must be positive integers; got {self.strides}.")
        if (self.n_fft - self.hop_length) % 2 or self.n_fft < self.hop_length:
            raise ValueError(
                f"WavTokenizerConfig: n_fft ({self.n_fft}) must be >= hop ({self.hop_length}) with an even difference "
                "(the iSTFT trims (n_fft - hop) / 2 on each side)."
            )
        if self.adanorm_num_embeddings is not None and not 0 <= self.bandwidth_id < self.adanorm_num_embeddings:
            raise ValueError(
                f"WavTokenizerConfig.bandwidth_id={self.bandwidth_id} is outside [0, {self.adanorm_num_embeddings - 1}]."
            )


class WavTokenizer(Tokenizer):
    """WavTokenizer: 24 kHz mono audio <-> one stream of ids (layout "1d", [B, N])."""

    family = "wavtokenizer"
    # precision policy: the encoder's conv stack stays fp32 (with only its first conv in bf16, 78% of ids on real
    # speech matched fp32; benchmarks/agreement.py), VQ distances, and the iSTFT head (exp magnitude, torch.istft);
    # the encoder's LSTM runs in bf16 (99.7% of ids equal, twice as fast; see bf16_modules)
    fp32_modules = ("encoder", "quantizer", "head")
    modality = "audio"
    config_class = WavTokenizerConfig

    def __init__(self, cfg: WavTokenizerConfig = WavTokenizerConfig()):
        super().__init__(cfg)
        self.encoder = SEANetEncoder(
            channels=1,
            dimension=cfg.encoder_dim,
            n_filters=cfg.encoder_filters,
            strides=cfg.strides,
            n_residual_layers=cfg.encoder_residual_layers,
            lstm=cfg.encoder_lstm_layers,
        )
        self.quantizer = VectorQuantizer(
            cfg.encoder_dim,
            cfg.codebook_size,
            ema_decay=cfg.ema_decay,
            kmeans_init=True,
            kmeans_iters=cfg.kmeans_iters,
            dead_code_threshold=cfg.dead_code_threshold,
            commitment_weight=cfg.commitment_weight,
        )
        self.backbone = VocosBackbone(
            input_channels=cfg.encoder_dim,
            dim=cfg.backbone_dim,
            intermediate_dim=cfg.backbone_intermediate_dim,
            num_layers=cfg.backbone_layers,
            adanorm_num_embeddings=cfg.adanorm_num_embeddings,
            attention_prelude=cfg.attention_prelude,
            prelude_dropout=cfg.dropout,
            num_groups=cfg.num_groups,
        )
        self.head = ISTFTHead(cfg.backbone_dim, cfg.n_fft, cfg.hop_length, padding="same")

    # -- properties ----------------------------------------------------------------------------

    @property
    def token_rate(self) -> float:
        return self.cfg.sample_rate / self.cfg.hop_length

    @property
    def hop_length(self) -> int:
        return self.cfg.hop_length


    def _cond(self, device) -> Tensor | None:
        if self.cfg.adanorm_num_embeddings is None:
            return None
        return torch.tensor([self.cfg.bandwidth_id], device=device)

    @property
    def bf16_modules(self) -> tuple[str, ...]:
        """The encoder's LSTM (its nn.LSTM, which the streaming encoder calls too): in bf16 it leaves 99.7% of ids on
        real speech equal to fp32 and runs in half the time (not fp16: oneDNN has no fp16 LSTM on CPU)."""
        return tuple(f"encoder.{name}.lstm" for name, m in self.encoder.named_modules() if isinstance(m, SLSTM))

    # -- stages (the public API below composes them) ---------------------------------------------
    def encode_latent(self, audio: Tensor) -> Tensor:
        """audio [B, 1, T] at the model rate -> pre-quantization latent [B, D, ceil(T / hop)].

        The encoder's convs reflect-pad internally (as upstream), so no input padding is needed."""
        dtype = next(self.parameters()).dtype
        return self.encoder(audio.to(dtype))

    def ids_to_features(self, ids: Tensor) -> Tensor:
        """ids [B, N] -> codebook rows [B, D, N] (what the backbone consumes)."""
        return self.quantizer.ids_to_quantized(ids).transpose(1, 2)

    def features_to_audio(self, features: Tensor) -> Tensor:
        """features [B, D, N] -> audio [B, N * hop] (backbone, then iSTFT head)."""
        return self.head(self.backbone(features, self._cond(features.device)))

    # -- contract ------------------------------------------------------------------------------
    @inference
    def encode(self, x, sample_rate: int | None = None, mono: bool = False, lengths=None) -> Tokens:
        """audio [B, C, T] float in [-1, 1] at `sample_rate` -> Tokens ids [B, ceil(T' / hop)].

        Resampled to 24 kHz (T' samples); more than one channel is an error unless `mono=True`
        (then channels are averaged). meta["num_samples"] = T' so decode trims back to it.

        Mixed lengths: `lengths` [B] (samples per item at `sample_rate`) with a padded batch, or `x`
        a list of clips [C, T_i]. Then ids are [B, ceil(max T'_i / hop)], 0 beyond each item,
        Tokens.lengths = ceil(T'_i / hop) and meta["num_samples"] = [T'_i, ...]. Every item gets
        exactly the ids it gets when encoded alone: items of equal length run together, each group
        cut to its own length (the encoder's reflect padding and right-hand conv context would
        otherwise see the padding; see `group_by_length`).
        """
        if isinstance(x, (list, tuple)):
            x, lengths = pad_clips(x, lengths, name="WavTokenizer")
        if lengths is None:
            audio = prepare_audio(x, name="WavTokenizer", sample_rate=sample_rate, model_rate=self.cfg.sample_rate, mono=mono)
            audio = audio.to(self.device)
            ids = self._encode_ids(audio)
            meta = self.token_meta(sample_rate=self.cfg.sample_rate, num_samples=int(audio.shape[-1]), hop_length=self.hop_length)
            return Tokens(ids=ids, layout="1d", meta=meta)
        lens = _check_lengths(lengths, x)
        # each group of equal length is cut, resampled and encoded as a batch of its own
        groups, num_samples, ids_of = [], [0] * len(lens), {}
        for length, idx in group_by_length(lens):
            audio = prepare_audio(x[idx, :, :length], name="WavTokenizer", sample_rate=sample_rate,
                                  model_rate=self.cfg.sample_rate, mono=mono).to(self.device)  # [G, 1, T'_g]
            ids_of[length] = self._encode_ids(audio)  # [G, N_g]
            groups.append((length, idx))
            for i in idx:
                num_samples[i] = int(audio.shape[-1])
        n_max = max(v.shape[1] for v in ids_of.values())
        ids = torch.zeros(len(lens), n_max, dtype=torch.long, device=self.device)
        token_lengths = torch.zeros(len(lens), dtype=torch.long)
        for length, idx in groups:
            g = ids_of[length]
            ids[torch.as_tensor(idx, device=self.device), : g.shape[1]] = g
            token_lengths[idx] = g.shape[1]
        meta = self.token_meta(sample_rate=self.cfg.sample_rate, num_samples=num_samples, hop_length=self.hop_length)
        return Tokens(ids=ids, layout="1d", lengths=token_lengths.to(self.device), meta=meta)

    def _encode_ids(self, audio: Tensor) -> Tensor:
        """audio [B, 1, T] at 24 kHz on the model's device -> ids [B, ceil(T / hop)]."""
        with torch.inference_mode(), parametrize.cached():
            z = self.encode_latent(audio)  # [B, D, N]
            return self.quantizer.codes_to_ids(z.transpose(1, 2))  # [B, N]

    @inference
    def decode(self, tokens: Tokens, chunk_tokens: int | None = None, overlap_tokens: int | None = None) -> Tensor:
        """Tokens ids [B, N] -> audio [B, 1, T] at 24 kHz, T = meta["num_samples"] (else N * hop).

        Long streams: `chunk_tokens=C` decodes windows of C tokens that overlap by `overlap_tokens`
        (default C // 4) and cross-fades them linearly, so memory grows with C, not N (the
        attention prelude is quadratic in its length). Not equal to one pass: the prelude, its
        GroupNorms and the convs see only the window (differences measured in NOTES.md).

        With Tokens.lengths (mixed lengths) each item is decoded as if alone (items of equal token
        length together, cut to that length), trimmed to its meta["num_samples"] (else lengths *
        hop), and the batch is zero-padded to the longest: audio [B, 1, max T_i]."""
        self.check_tokens(tokens)
        if tokens.layout != "1d" or tokens.ids.dim() != 2:
            raise ValueError(
                f"WavTokenizer decodes 1d tokens [B, N]; got layout {tokens.layout!r} with shape {list(tokens.ids.shape)}."
            )
        ids = tokens.ids.to(self.device)
        num_samples = tokens.meta.get("num_samples")
        if tokens.lengths is None:
            audio = self._decode_ids(ids, chunk_tokens, overlap_tokens)  # [B, N * hop]
            n = audio.shape[-1]
            if num_samples is not None:
                n = min(n, int(num_samples) if not isinstance(num_samples, list) else max(num_samples))
            return audio[:, None, :n]
        lens = tokens.lengths.cpu()
        n_tok = ids.shape[1]
        if int(lens.min()) < 1 or int(lens.max()) > n_tok:
            raise ValueError(f"Tokens.lengths must lie in [1, {n_tok}] (the ids' length); got {lens.tolist()}.")
        per_item = [int(n) * self.hop_length for n in lens.tolist()]
        if isinstance(num_samples, list) and len(num_samples) == len(per_item):
            per_item = [min(a, int(b)) for a, b in zip(per_item, num_samples)]
        out = torch.zeros(len(per_item), 1, max(per_item), device=self.device)
        for n, idx in group_by_length(lens):
            sel = torch.as_tensor(idx, device=self.device)
            audio = self._decode_ids(ids[sel, :n], chunk_tokens, overlap_tokens)  # [G, n * hop]
            for j, i in enumerate(idx):
                out[i, 0, : per_item[i]] = audio[j, : per_item[i]]
        return out

    def _decode_ids(self, ids: Tensor, chunk: int | None = None, overlap: int | None = None) -> Tensor:
        """ids [B, N] on the model's device -> audio [B, N * hop] (in overlapping windows if `chunk`)."""
        if chunk is None:
            with torch.inference_mode():
                return self.features_to_audio(self.ids_to_features(ids))
        stream = OverlapAddDecoder(self._decode_window, self.hop_length, chunk, overlap)
        return torch.cat([stream.push(ids), stream.flush()], dim=-1)

    def _decode_window(self, ids: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.features_to_audio(self.ids_to_features(ids))

    # -- streaming -----------------------------------------------------------------------------
    def stream_encoder(self) -> "WavTokenizerEncoderStream":
        """Encode audio chunk by chunk: `s.push(audio [B, 1, t] at 24 kHz) -> Tokens` (the ids now final),
        then `s.flush()`. Exactly the offline ids (the encoder's convs see a receptive-field margin, the
        LSTM carries its state); lookahead `s.lookahead_samples`. No resampling: feed the model's rate."""
        return WavTokenizerEncoderStream(self)

    def stream_decoder(self, chunk_tokens: int = 100, overlap_tokens: int | None = None) -> OverlapAddDecoder:
        """Decode tokens chunk by chunk: `s.push(ids [B, n]) -> audio [B, m]` (the samples now final), then
        `s.flush()`. Equal to `decode(tokens, chunk_tokens=, overlap_tokens=)`; windows, not one pass (the
        attention prelude sees the whole input offline), so not equal to `decode(tokens)`: see NOTES.md."""
        return OverlapAddDecoder(self._decode_window, self.hop_length, chunk_tokens, overlap_tokens)

    def forward(self, x: Tensor) -> TokenizerOutput:
        """Training path: audio [B, 1, T] at 24 kHz -> reconstruction [B, 1, T], tokens, VQ losses.

        In training mode the quantizer runs k-means once, EMA-updates its codebook and restarts
        dead codes; gradients pass it straight through. Eval mode touches no buffer."""
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[1] != 1:
            got = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"WavTokenizer.forward takes mono audio [B, 1, T] at 24 kHz; got {got}.")
        z = self.encode_latent(x)  # [B, D, N]
        q = self.quantizer(z.transpose(1, 2))  # quantized [B, N, D]
        audio = self.features_to_audio(q.quantized.transpose(1, 2))[:, None, : x.shape[-1]]  # [B, 1, T]
        meta = self.token_meta(sample_rate=self.cfg.sample_rate, num_samples=int(x.shape[-1]), hop_length=self.hop_length)
        tokens = Tokens(ids=q.ids.detach(), layout="1d", meta=meta)
        return TokenizerOutput(recon=audio, tokens=tokens, losses=q.losses, metrics=q.metrics)

    def example_input(self, batch_size: int = 2, generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
        """(audio [B, 1, 8 * hop] of quiet noise at 24 kHz, {"sample_rate": 24000})."""
        x = 0.1 * torch.randn(batch_size, 1, 8 * self.hop_length, generator=generator)
        return x, {"sample_rate": self.cfg.sample_rate}


# ----------------------------------------------------------------------------------------------
# mixed-length batches
# ----------------------------------------------------------------------------------------------
def group_by_length(lengths) -> list[tuple[int, list[int]]]:
    """lengths [B] -> [(length, [item indices with that length]), ...], longest first.

    WavTokenizer is not length-agnostic: the SEANet convs reflect-pad at the clip's end and look
    up to a few frames to the right, and the decoder's GroupNorm, attention and convs span the
    whole sequence, so zero padding would change an item's last codes and its whole waveform.
    Running each group of equal length at that length gives every item exactly its solo result.
    """
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(torch.as_tensor(lengths).reshape(-1).tolist()):
        groups.setdefault(int(n), []).append(i)
    return sorted(groups.items(), key=lambda kv: -kv[0])


def _check_lengths(lengths, x) -> list[int]:
    """lengths [B] (samples per item at the input rate) for x [B, C, T] -> a list of ints in [1, T]."""
    if not isinstance(x, Tensor) or x.dim() != 3:
        got = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"WavTokenizer.encode: lengths= goes with a padded batch [B, C, T]; got {got}.")
    lens = torch.as_tensor(lengths).reshape(-1)
    b, t = x.shape[0], x.shape[-1]
    if lens.is_floating_point() or lens.numel() != b:
        raise ValueError(f"WavTokenizer.encode: lengths must hold {b} integers (samples per item); got {lengths!r}.")
    if int(lens.min()) < 1 or int(lens.max()) > t:
        raise ValueError(f"WavTokenizer.encode: lengths must lie in [1, {t}] (the padded length); got {lens.tolist()}.")
    return [int(n) for n in lens.tolist()]


class WavTokenizerEncoderStream:
    """`WavTokenizer.stream_encoder()`: audio pushed in chunks -> ids, equal to the offline encode."""

    def __init__(self, model: WavTokenizer):
        self.model = model
        self.encoder = model.encoder.stream()
        self.lookahead_samples = self.encoder.lookahead_samples
        self.num_samples = 0

    def _tokens(self, latent: Tensor) -> Tokens:
        with torch.inference_mode():
            ids = self.model.quantizer.codes_to_ids(latent.transpose(1, 2))  # [B, k]
        meta = self.model.token_meta(sample_rate=self.model.cfg.sample_rate, hop_length=self.model.hop_length)
        return Tokens(ids=ids.long(), layout="1d", meta=meta)

    def push(self, audio: Tensor) -> Tokens:
        """audio [B, 1, t] in [-1, 1] at the model's rate -> Tokens of the frames now final ([B, k], k >= 0)."""
        x = prepare_audio(audio, name="WavTokenizer stream", sample_rate=self.model.cfg.sample_rate,
                          model_rate=self.model.cfg.sample_rate).to(self.model.device)
        self.num_samples += int(x.shape[-1])
        return self._tokens(self.encoder.push(x))

    def flush(self) -> Tokens:
        """The remaining frames; meta["num_samples"] gives the stream's length for decode."""
        tokens = self._tokens(self.encoder.flush())
        tokens.meta["num_samples"] = self.num_samples
        return tokens

