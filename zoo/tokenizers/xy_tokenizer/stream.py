"""XY-Tokenizer streaming: `XYTokenizer.stream_encoder()` and `stream_decoder()`, each equal to the offline
pass over the whole stream (upstream's 30 s windows with a 20 s hop)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from zoo.api import Tokens
from zoo.inputs import prepare_audio
from zoo.streaming import HopWindowStream

if TYPE_CHECKING:
    from .model import XYTokenizer


class XYEncoderStream:
    """`XYTokenizer.stream_encoder()`: equal to the offline encode of the whole stream (upstream's windows)."""

    def __init__(self, model: XYTokenizer):
        cfg = model.cfg
        self.model, self.num_samples = model, 0
        self.lookahead_samples = cfg.window_samples
        self.windows = HopWindowStream(self._one_window, self._tail, cfg.window_samples,
                                       cfg.window_hop_seconds * cfg.sample_rate, cfg.hop_codes)

    def _one_window(self, wav: Tensor) -> Tensor:  # [B, window] -> ids [B, Q, window codes]
        with torch.inference_mode(), self.model.autocast():
            return self.model._encode_windows(wav, torch.full((wav.shape[0],), wav.shape[-1], device=wav.device))

    def _tail(self, wav: Tensor) -> Tensor | None:
        if wav.shape[-1] < self.model.cfg.samples_per_code:
            return None  # offline drops a trailing partial code frame too
        return self.model.encode(wav[:, None], sample_rate=self.model.sample_rate).ids

    def _tokens(self, parts: list[Tensor], b: int) -> Tokens:
        q = self.model.cfg.num_quantizers
        ids = torch.cat(parts, dim=-1) if parts else torch.zeros(b, q, 0, dtype=torch.long, device=self.model.device)
        meta = self.model.token_meta(sample_rate=self.model.sample_rate, frame_rate=self.model.frame_rate)
        return Tokens(ids=ids.long(), layout="rvq", meta=meta)

    def push(self, audio: Tensor) -> Tokens:
        """audio [B, 1, t] in [-1, 1] at the model's rate -> Tokens of the codes now final ([B, Q, k], k >= 0)."""
        x = prepare_audio(audio, name="XYTokenizer stream", sample_rate=self.model.sample_rate,
                          model_rate=self.model.sample_rate).to(self.model.device)
        self.num_samples += int(x.shape[-1])
        return self._tokens(self.windows.push(x[:, 0]), x.shape[0])

    def flush(self) -> Tokens:
        b = self.windows.buffer.shape[0] if self.windows.buffer is not None else 1
        tokens = self._tokens(self.windows.flush(), b)
        tokens.meta["num_samples"] = self.num_samples
        return tokens


class XYDecoderStream:
    """`XYTokenizer.stream_decoder()`: equal to the offline decode of the whole token stream."""

    def __init__(self, model: XYTokenizer):
        cfg = model.cfg
        self.model = model
        self.windows = HopWindowStream(self._one_window, self._tail, cfg.window_codes, cfg.hop_codes,
                                       cfg.hop_codes * cfg.output_samples_per_code)

    def _one_window(self, ids: Tensor) -> Tensor:  # [B, Q, window codes] -> audio [B, 1, n]
        with torch.inference_mode(), self.model.autocast():
            lens = torch.full((ids.shape[0],), ids.shape[-1], device=ids.device)
            return self.model._decode_window(ids, lens)[:, None].float()

    def _tail(self, ids: Tensor) -> Tensor:
        return self.model.decode(Tokens(ids=ids, layout="rvq", meta={"family": self.model.family}))

    def push(self, ids: Tensor) -> Tensor:
        """ids [B, Q, n] -> audio [B, 1, m] now final (m may be 0)."""
        self.model.check_tokens(Tokens(ids=ids, layout="rvq"))
        parts = self.windows.push(ids.to(self.model.device))
        return torch.cat(parts, dim=-1) if parts else torch.zeros(ids.shape[0], 1, 0, device=self.model.device)

    def flush(self) -> Tensor:
        parts = self.windows.flush()
        return torch.cat(parts, dim=-1) if parts else torch.zeros(1, 1, 0, device=self.model.device)
