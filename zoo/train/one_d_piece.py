"""One-D-Piece's stage-1 training pass (TiTok's recipe, arXiv 2406.07550; One-D-Piece arXiv 2501.10064), made of
the model's parts (encoder, quantizer, Tail Token Drop, ViT decoder, proxy codebook, pixel decoder).

`training_forward(model, x, ...)` is `OneDPiece.forward` plus what only training asks for:
    continuous     the decoder reads the unquantised (l2-normalised) latents while the quantizer still runs on
                   them (usage statistics, dead-code restarts, its losses): a warm-up that seeds the codebook with
                   real latents before the tokens become discrete
    proxy_ids      [B, g, g] codes of a proxy teacher (zoo.train.proxy): `losses["proxy"]`, the cross-entropy of
                   the decoder's proxy logits against them, and `losses["proxy_render"]`, the L2 between x and the
                   pixel decoder's rendering of the teacher's codes themselves (it trains only the proxy codebook
                   and the pixel decoder: a teacher decoder for a teacher that has none)
    proxy_decoder  the teacher's own decoder, proxy-code probabilities [B, K_proxy, g, g] -> images (e.g.
                   `PatchKMeansTeacher.decode`): `losses["proxy_decode"]`, the L2 between x and that decoder applied
                   to the softmax of the model's proxy logits (a pixel-space signal whose logits keep the teacher's
                   meaning; it needs no proxy_ids)
    render         False skips the pixel decoder on the predicted logits (`recon` None): a proxy-code stage that
                   weights no pixel loss does not pay for it (upstream's stage-1 model has no pixel decoder)
The training program weights each term by its stage weight. Written from the papers and a reading of upstream's
training code; nothing is copied.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from zoo.api import TokenizerOutput
from zoo.tokenizers.one_d_piece import OneDPiece


def training_forward(model: OneDPiece, x: Tensor, *, continuous: bool = False, proxy_ids: Tensor | None = None,
                     proxy_decoder: Callable[[Tensor], Tensor] | None = None, render: bool = True,
                     generator: torch.Generator | None = None) -> TokenizerOutput:
    """x [B, 3, S, S] in [0, 1] -> TokenizerOutput as OneDPiece.forward, with the stage-1 terms (module docstring)."""
    z = model.encode_latent(x)
    zq, ids, losses = model.quantize(z)
    if continuous:
        zq = F.normalize(z, dim=-1) if model.cfg.use_l2_norm else z
    zq = model.tail_drop(zq, generator=generator).x  # identity in eval mode
    logits = model.decode_logits(zq)  # [B, K_proxy, g, g]
    if proxy_ids is not None:
        if proxy_ids.shape != (logits.shape[0], *logits.shape[2:]):
            raise ValueError(f"proxy_ids must be [B, g, g] = {[logits.shape[0], *logits.shape[2:]]} (one proxy "
                             f"code per decoder position); got {list(proxy_ids.shape)}.")
        taught = model.pixel_decoder(rearrange(model.proxy_codebook[proxy_ids], "b h w c -> b c h w"))
        losses = {**losses, "proxy": F.cross_entropy(logits.float(), proxy_ids),
                  "proxy_render": F.mse_loss(taught.float(), x.float())}
    if proxy_decoder is not None:
        losses = {**losses, "proxy_decode": F.mse_loss(proxy_decoder(logits.float().softmax(dim=1)), x.float())}
    return model.forward_output(x, ids, zq.shape[1], losses, model.render(logits) if render else None)


def continuous_forward(model: OneDPiece, x: Tensor, generator: torch.Generator | None = None) -> TokenizerOutput:
    """The warm-up stage without proxy terms: training_forward(continuous=True)."""
    return training_forward(model, x, continuous=True, generator=generator)


__all__ = ["continuous_forward", "training_forward"]
