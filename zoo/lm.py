"""LM-ready token sequences: several codebooks as one stream over a shared vocabulary, and back.

A language model over codec tokens wants one sequence of ids from one vocabulary. Two standard
ways to lay out Q codebooks of K codes each, both with exact inverses to `Tokens`:

- "flat": interleave the codebooks frame by frame (as in VALL-E-style and UniAudio-style flattening):
  ids [B, Q, T] -> seq [B, T * Q] with seq[b, t * Q + q] = offset + q * K + ids[b, q, t].
- "delay": MusicGen's delay pattern (Copet et al., "Simple and Controllable Music Generation",
  arXiv 2306.05284; audiocraft, MIT): codebook q is shifted q steps to the right, so one step of a
  parallel-prediction LM emits codebook q of frame t - q. ids [B, Q, T] -> seq [B, Q, T + Q - 1],
  seq[b, q, t + q] = offset + q * K + ids[b, q, t]; the Q - 1 corner positions hold `pad_id`.

Order: `order="reversed"` reads each item's frames last to first before the pattern is applied
(within the item's length, so pads stay at the end). Selftok numbers its tokens along the reverse
diffusion process: token 0 is visible at every noise level and high-index tokens only at high noise
(coarse, global content). The official README warns that an autoregressive prior over Selftok
decodes the sequence reversely, i.e. generates the coarse tokens first; `order="reversed"` gives
that sequence and `from_lm` puts the ids back in the tokenizer's order. ("forward" is the default.)

Offsets: codebook q owns ids [offset + q * K, offset + (q + 1) * K); `offset` places the whole
range after another vocabulary (text, or a second modality), and `pad_id` (default: the first id
after the range) marks positions that carry no code: the delay corners and, in a batch with
`Tokens.lengths`, everything beyond an item's end. `LMTokens.vocab_size` is the first id not used.

Written here from the two papers' descriptions; nothing is copied.

    lm = to_lm(tokens, codebook_size=1024, pattern="delay", offset=32000)   # [B, Q, T + Q - 1]
    back = from_lm(lm)                                                      # == tokens
    lm = to_lm(selftok_tokens, 32768, order="reversed")                     # coarse tokens first
    gen = dataclasses.replace(lm, ids=generated)  # ids from an LM, same pattern and offsets
    tokens = from_lm(gen)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from zoo.api import Tokens

PATTERNS = ("flat", "delay")
ORDERS = ("forward", "reversed")


@dataclass
class LMTokens:
    """Ids laid out for a language model, with what is needed to get `Tokens` back.

    ids: "flat" [B, T * Q]; "delay" [B, Q, T + Q - 1]. int64, in the shared vocabulary.
    lengths: per item, valid positions along the last axis (None when every item is full).
    shape: the source ids' shape without the batch axis ([Q, T], [N], [H, W] or [G, H, W]).
    layout, meta: the source Tokens' layout and metadata, restored by `from_lm`.
    order: "forward", or "reversed" (each item's frames last to first, see the module docstring).
    """

    ids: Tensor
    pattern: str
    codebook_size: int
    num_codebooks: int
    offset: int = 0
    pad_id: int | None = None
    lengths: Tensor | None = None
    shape: tuple[int, ...] = ()
    layout: str = "rvq"
    meta: dict[str, Any] = field(default_factory=dict)
    order: str = "forward"

    @property
    def vocab_size(self) -> int:
        """The first id above every id this layout uses (codes and pad)."""
        top = self.offset + self.num_codebooks * self.codebook_size
        return max(top, (self.pad_id or 0) + 1)


# ----------------------------------------------------------------------------------------------
# the patterns on plain tensors
# ----------------------------------------------------------------------------------------------
def interleave(codes: Tensor) -> Tensor:
    """codes [B, Q, T] -> [B, T * Q], frame by frame: (t=0, q=0), (t=0, q=1), ..., (t=1, q=0), ..."""
    b, q, t = codes.shape
    return codes.transpose(1, 2).reshape(b, t * q)  # [B, T, Q] -> [B, T * Q]


def deinterleave(seq: Tensor, num_codebooks: int) -> Tensor:
    """[B, T * Q] -> codes [B, Q, T] (the inverse of `interleave`)."""
    b, n = seq.shape
    if n % num_codebooks:
        raise ValueError(f"A flat sequence of {n} ids is not a whole number of frames of {num_codebooks} codebooks.")
    return seq.reshape(b, n // num_codebooks, num_codebooks).transpose(1, 2)  # [B, T, Q] -> [B, Q, T]


def delay(codes: Tensor, pad_id: int) -> Tensor:
    """codes [B, Q, T] -> [B, Q, T + Q - 1]: codebook q shifted right by q, `pad_id` elsewhere."""
    b, q, t = codes.shape
    out = codes.new_full((b, q, t + q - 1), pad_id)
    for k in range(q):
        out[:, k, k : k + t] = codes[:, k]
    return out


def undelay(seq: Tensor) -> Tensor:
    """[B, Q, T + Q - 1] -> codes [B, Q, T] (the inverse of `delay`)."""
    b, q, n = seq.shape
    t = n - q + 1
    if t < 1:
        raise ValueError(f"A delayed sequence of {q} codebooks needs at least {q} steps; got {n}.")
    return torch.stack([seq[:, k, k : k + t] for k in range(q)], dim=1)


def reverse_frames(codes: Tensor, lengths: Tensor | None = None) -> Tensor:
    """codes [B, Q, T] -> [B, Q, T] with each item's first lengths[b] frames (all T when None) in
    reverse order and the rest left in place. Its own inverse."""
    b, q, t = codes.shape
    if lengths is None:
        return codes.flip(-1)
    pos = torch.arange(t, device=codes.device)[None, :]  # [1, T]
    n = lengths.to(codes.device)[:, None]  # [B, 1]
    src = torch.where(pos < n, n - 1 - pos, pos)  # [B, T]: frame read for each output frame
    return codes.gather(2, src[:, None, :].expand(b, q, t))


# ----------------------------------------------------------------------------------------------
# Tokens <-> LMTokens
# ----------------------------------------------------------------------------------------------
def _as_codes(tokens: Tokens) -> tuple[Tensor, tuple[int, ...]]:
    """Tokens ids -> ([B, Q, T], shape without the batch axis)."""
    ids, shape = tokens.ids, tuple(tokens.ids.shape[1:])
    if tokens.layout in ("rvq", "streams"):
        return ids, shape  # [B, Q, T]
    if tokens.layout in ("1d", "multiscale"):
        return ids[:, None, :], shape  # [B, 1, N]
    if tokens.layout == "2d":
        if ids.dim() == 3:
            return ids.flatten(1)[:, None, :], shape  # [B, H, W] -> [B, 1, H * W], raster order
        return ids.flatten(2), shape  # [B, G, H, W] -> [B, G, H * W]: groups as codebooks
    raise ValueError(f"to_lm does not know layout {tokens.layout!r}.")


def to_lm(tokens: Tokens, codebook_size: int, *, pattern: str = "flat", offset: int = 0,
          pad_id: int | None = None, order: str = "forward") -> LMTokens:
    """Tokens -> LMTokens in one shared vocabulary (see the module docstring for both patterns).

    codebook_size: K, codes per codebook (`tokenizer.codebook_size`). Layouts "rvq" / "streams"
    give Q = ids.shape[1]; "1d" / "multiscale" are one codebook; "2d" is read in raster order,
    with the groups of [B, G, H, W] as G codebooks. pad_id defaults to offset + Q * K.
    order: "forward", or "reversed": each item's frames last to first (within its length), e.g.
    for Selftok, whose AR prior generates the coarse high-index tokens first.
    """
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {PATTERNS}; got {pattern!r}.")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}; got {order!r}.")
    if int(codebook_size) < 1 or int(offset) < 0:
        raise ValueError(f"to_lm needs codebook_size >= 1 and offset >= 0; got {codebook_size} and {offset}.")
    codes, shape = _as_codes(tokens)
    b, q, t = codes.shape
    k = int(codebook_size)
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= k):
        raise ValueError(f"Token ids lie in [{int(codes.min())}, {int(codes.max())}], outside a codebook of {k}.")
    if pad_id is None:
        pad_id = offset + q * k
    elif offset <= int(pad_id) < offset + q * k:
        raise ValueError(f"pad_id {pad_id} lies inside the code range [{offset}, {offset + q * k}).")
    lengths = tokens.lengths.cpu() if tokens.lengths is not None else None
    if lengths is not None and tokens.seq_axis is None:
        raise ValueError(f"Tokens of layout {tokens.layout!r} with per-item lengths cannot be laid out for an LM.")
    if order == "reversed":
        codes = reverse_frames(codes, lengths)  # [B, Q, T]
    shifted = codes + offset + k * torch.arange(q, device=codes.device)[None, :, None]  # [B, Q, T]
    if lengths is not None:  # beyond an item's end: pad
        beyond = torch.arange(t, device=codes.device)[None, None, :] >= lengths.to(codes.device)[:, None, None]
        shifted = shifted.masked_fill(beyond, pad_id)
    if pattern == "flat":
        ids = interleave(shifted)  # [B, T * Q]
        lm_lengths = None if lengths is None else lengths * q
    else:
        ids = delay(shifted, pad_id)  # [B, Q, T + Q - 1]
        lm_lengths = None if lengths is None else lengths + q - 1  # an item ends when its last codebook does
    return LMTokens(ids=ids, pattern=pattern, codebook_size=k, num_codebooks=q, offset=int(offset), pad_id=int(pad_id),
                    lengths=lm_lengths, shape=shape, layout=tokens.layout, meta=dict(tokens.meta), order=order)


def from_lm(lm: LMTokens) -> Tokens:
    """LMTokens -> Tokens: the exact inverse of `to_lm` (ids back in [0, K), 0 beyond each length).

    Ids an LM generated go through `dataclasses.replace(lm, ids=generated)`; any id that is not
    a code of the codebook its position belongs to (a pad inside an item, a code of codebook 2
    where codebook 0 belongs) is an error that names the first such position."""
    q, k = lm.num_codebooks, lm.codebook_size
    if lm.pattern == "flat":
        if lm.ids.dim() != 2:
            raise ValueError(f"Flat LM ids are [B, T * Q]; got shape {list(lm.ids.shape)}.")
        codes = deinterleave(lm.ids, q)  # [B, Q, T]
        lengths = None if lm.lengths is None else lm.lengths.cpu() // q
    elif lm.pattern == "delay":
        if lm.ids.dim() != 3 or lm.ids.shape[1] != q:
            raise ValueError(f"Delayed LM ids are [B, {q}, T + {q - 1}]; got shape {list(lm.ids.shape)}.")
        codes = undelay(lm.ids)  # [B, Q, T]
        lengths = None if lm.lengths is None else lm.lengths.cpu() - (q - 1)
    else:
        raise ValueError(f"pattern must be one of {PATTERNS}; got {lm.pattern!r}.")
    if lm.order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}; got {lm.order!r}.")
    if lm.order == "reversed":
        codes = reverse_frames(codes, lengths)  # back to the tokenizer's order (frames named below are its)
    b, _, t = codes.shape
    codes = codes - lm.offset - k * torch.arange(q, device=codes.device)[None, :, None]
    valid = torch.ones_like(codes, dtype=torch.bool)
    if lengths is not None:
        valid = torch.arange(t, device=codes.device)[None, None, :] < lengths.to(codes.device)[:, None, None]
    bad = valid & ((codes < 0) | (codes >= k))
    if bool(bad.any()):
        i, j, s = (int(v) for v in bad.nonzero()[0])
        raise ValueError(
            f"LM id at item {i}, codebook {j}, frame {s} is not a code of codebook {j} "
            f"(its ids are [{lm.offset + j * k}, {lm.offset + (j + 1) * k})).")
    codes = codes.masked_fill(~valid, 0)  # [B, Q, T]
    ids = _from_codes(codes, lm)
    return Tokens(ids=ids, layout=lm.layout, lengths=lengths, meta=dict(lm.meta))


def _from_codes(codes: Tensor, lm: LMTokens) -> Tensor:
    b, q, t = codes.shape
    if lm.layout in ("rvq", "streams"):
        return codes
    if lm.layout in ("1d", "multiscale"):
        return codes[:, 0]
    if lm.layout == "2d":
        return codes.reshape(b, *lm.shape)  # [B, H, W] or [B, G, H, W]
    raise ValueError(f"from_lm does not know layout {lm.layout!r}.")


__all__ = ["LMTokens", "PATTERNS", "ORDERS", "reverse_frames", "to_lm", "from_lm", "interleave", "deinterleave", "delay", "undelay"]
