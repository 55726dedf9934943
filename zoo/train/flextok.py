"""FlexTok's REPA target (Yu et al., arXiv 2410.06940; FlexTok arXiv 2502.13967): the frozen vision encoder whose
patch features the decoder's are aligned with. The model holds only the trained projector (`repa_projector`,
saved); the encoder belongs to training: never saved, trained or averaged.

    encoder = repa_encoder(model)                      # None when the config has REPA off
    out = model.flow_forward(x, t=t, noise=noise, repa_target=encoder(x))
"""

from __future__ import annotations

from torch import nn

from zoo.blocks.repa import FrozenFeatureEncoder
from zoo.tokenizers.flextok import FlexTok


def repa_encoder(model: FlexTok, encoder: nn.Module | None = None) -> nn.Module | None:
    """The frozen REPA encoder of `model`'s config, on its device, in eval mode, without gradients: images
    [B, 3, H, W] in [0, 1] -> features [B, N, repa_dim] (N a square) or [B, repa_dim, h, w]. A timm name
    (cfg.repa_encoder) is built here; `custom` takes `encoder`, your module. None when REPA is off."""
    cfg = model.cfg
    if not cfg.repa_encoder:
        if encoder is not None:
            raise ValueError("This FlexTok has REPA off (config repa_encoder is empty); build it with repa_encoder and "
                             "repa_dim set.")
        return None
    if encoder is None:
        if cfg.repa_encoder == "custom":
            raise ValueError("FlexTok config repa_encoder='custom' needs your frozen feature encoder: "
                             "zoo.train.flextok.repa_encoder(model, module).")
        encoder = FrozenFeatureEncoder(cfg.repa_encoder, cfg.repa_image_size, cfg.repa_pretrained)
    return encoder.requires_grad_(False).eval().to(model.device)


__all__ = ["repa_encoder"]
