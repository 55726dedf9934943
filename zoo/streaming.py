"""Streaming for audio tokenizers: push audio (or tokens) chunk by chunk, get what is final so far.

Two pieces, each used by a family's `stream_encoder()` / `stream_decoder()`:
- `OverlapAddDecoder`: decode a token stream in windows of `chunk` tokens that overlap by `overlap`,
  cross-faded linearly. Equal, sample for sample, to the offline windowed decode (which uses it too);
  not equal to one pass over the whole stream when the decoder looks at its whole input (attention,
  GroupNorm): the family's NOTES measure the difference. Latency: one window.
- Encoders stream in their own block (e.g. `zoo.blocks.seanet.SEANetEncoderStream`), exactly where
  the architecture allows it.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


class OverlapAddDecoder:
    """`decode_window(ids [B, n]) -> audio [B, n * hop]`, run on windows of `chunk` tokens starting every
    `chunk - overlap` tokens; overlaps are cross-faded (weights sum to one). `push(ids)` returns the audio
    that no later window can change; `flush()` decodes the rest (the last window has no fade-out)."""

    def __init__(self, decode_window: Callable[[Tensor], Tensor], hop: int, chunk: int, overlap: int | None = None):
        overlap = int(chunk) // 4 if overlap is None else int(overlap)
        if int(chunk) < 1 or not 0 <= overlap < int(chunk):
            raise ValueError(f"Windowed decode: chunk_tokens must be >= 1 and 0 <= overlap_tokens < chunk_tokens; "
                             f"got {chunk} and {overlap}.")
        self.decode_window, self.hop, self.chunk, self.overlap = decode_window, int(hop), int(chunk), overlap
        self.buffer: Tensor | None = None  # tokens of the current window onwards [B, k]
        self.tail: tuple[Tensor, Tensor] | None = None  # previous window's weighted overlap and its weights
        self.ramp: Tensor | None = None

    def _window(self, ids: Tensor, final: bool) -> Tensor:
        """Decode one window, blend it with the previous one's tail, return the finished samples."""
        y = self.decode_window(ids).float()  # [B, n * hop]
        ov = self.overlap * self.hop
        if self.ramp is None:
            self.ramp = torch.linspace(0, 1, ov + 2, device=y.device)[1:-1]  # strictly inside (0, 1)
        w = torch.ones(y.shape[-1], device=y.device)
        if self.tail is not None and ov:
            w[:ov] = self.ramp  # fade in over the previous window's overlap
        if not final and ov:
            w[-ov:] *= self.ramp.flip(0)  # fade out over the next one's
        out, weight = y * w, w
        if self.tail is not None and ov:
            out = torch.cat([out[:, :ov] + self.tail[0], out[:, ov:]], dim=-1)
            weight = torch.cat([weight[:ov] + self.tail[1], weight[ov:]])
        if final:
            self.tail = None
            return out / weight
        keep = out.shape[-1] - ov
        self.tail = (out[:, keep:], weight[keep:])
        return out[:, :keep] / weight[:keep]

    def push(self, ids: Tensor) -> Tensor:
        """ids [B, n] (the next tokens) -> audio [B, m] now final (m may be 0)."""
        self.buffer = ids if self.buffer is None else torch.cat([self.buffer, ids], dim=1)
        pieces = [self.buffer.new_zeros(self.buffer.shape[0], 0, dtype=torch.float32)]
        while self.buffer.shape[1] > self.chunk:  # a later token exists, so this window is not the last
            pieces.append(self._window(self.buffer[:, : self.chunk], final=False))
            self.buffer = self.buffer[:, self.chunk - self.overlap :]
        return torch.cat(pieces, dim=-1)

    def flush(self) -> Tensor:
        """Decode what is left (the last window) -> audio [B, m]."""
        if self.buffer is None or self.buffer.shape[1] == 0:
            raise ValueError("Streaming decode: nothing to flush (push tokens first).")
        out = self._window(self.buffer, final=True)
        self.buffer = None
        return out


class HopWindowStream:
    """For codecs that run long inputs as windows of `window` units starting every `hop` units, each
    window keeping its first `hop` units' output (XY-Tokenizer's encoder and decoder, as upstream).
    `push(x [..., n])` returns the output of every window whose input is complete (a later sample cannot
    change it); `flush()` runs the offline call on the rest, which starts on a window boundary, so the
    concatenation equals the offline result exactly. Latency: one window.

    one_window(x [..., window]) -> output of a full window; its first `keep` output units are final.
    offline(x [..., n]) -> output of the tail (None when the tail is too short to produce any)."""

    def __init__(self, one_window: Callable[[Tensor], Tensor], offline: Callable[[Tensor], Tensor | None],
                 window: int, hop: int, keep: int):
        self.one_window, self.offline = one_window, offline
        self.window, self.hop, self.keep = int(window), int(hop), int(keep)
        self.buffer: Tensor | None = None  # input from the current window's start on

    def push(self, x: Tensor) -> list[Tensor]:
        """-> the outputs now final, one per completed window (possibly none)."""
        self.buffer = x if self.buffer is None else torch.cat([self.buffer, x], dim=-1)
        out = []
        while self.buffer.shape[-1] >= self.window:
            out.append(self.one_window(self.buffer[..., : self.window])[..., : self.keep])
            self.buffer = self.buffer[..., self.hop :]
        return out

    def flush(self) -> list[Tensor]:
        if self.buffer is None:
            raise ValueError("Streaming: nothing to flush (push input first).")
        tail, self.buffer = self.buffer, None
        y = self.offline(tail) if tail.shape[-1] else None
        return [] if y is None else [y]
