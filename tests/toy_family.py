"""A test-only tokenizer family: a patch conv encoder, a plain VQ and a transposed-conv decoder.

It exercises the core contract (registry, hub, Tokens, CLI) independently of the real families.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from zoo.api import Tokenizer, TokenizerOutput, Tokens
from zoo.inputs import prepare_images
from zoo.quantizers.base import Quantizer, QuantizerOutput
from zoo.registry import FamilySpec, PretrainedCfg, Variant


class PlainVQ(Quantizer):
    """Nearest-neighbour VQ (test-only)."""

    def __init__(self, dim: int, codebook_size: int):
        super().__init__()
        self.codebook_size = codebook_size
        self.codebook = nn.Parameter(torch.randn(codebook_size, dim))

    def forward(self, z):  # [..., D]
        flat = z.reshape(-1, z.shape[-1])
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)
        ids = d.argmin(1).reshape(z.shape[:-1])
        q = self.codebook[ids]
        loss = F.mse_loss(z, q.detach()) + F.mse_loss(q, z.detach())
        return QuantizerOutput(quantized=z + (q - z).detach(), ids=ids, losses={"vq": loss})

    def ids_to_codes(self, ids):
        self.check_ids(ids)
        return self.codebook[ids]


@dataclass(frozen=True)
class ToyConfig:
    image_size: int = 16
    patch: int = 4
    dim: int = 8
    codebook_size: int = 32


class ToyTokenizer(Tokenizer):
    family = "toy"
    modality = "image"
    config_class = ToyConfig

    def __init__(self, cfg: ToyConfig):
        super().__init__(cfg)
        self.encoder = nn.Conv2d(3, cfg.dim, cfg.patch, stride=cfg.patch)
        self.quantizer = PlainVQ(cfg.dim, cfg.codebook_size)
        self.decoder = nn.ConvTranspose2d(cfg.dim, 3, cfg.patch, stride=cfg.patch)

    @property
    def codebook_size(self):
        return self.cfg.codebook_size

    @property
    def token_rate(self):
        return (self.cfg.image_size // self.cfg.patch) ** 2

    @property
    def input_size(self):
        return (self.cfg.image_size, self.cfg.image_size)

    def example_input(self, batch_size=2, generator=None):
        return torch.rand(batch_size, 3, self.cfg.image_size, self.cfg.image_size, generator=generator), {}

    def _quantize(self, x):
        z = rearrange(self.encoder(x * 2 - 1), "b d h w -> b h w d")
        return self.quantizer(z)

    @torch.inference_mode()
    def encode(self, x) -> Tokens:
        x = prepare_images(x, name="Toy", size=self.input_size)
        q = self._quantize(x)
        return Tokens(q.ids.flatten(1), layout="1d", meta=self.token_meta(image_size=list(self.input_size)))

    @torch.inference_mode()
    def decode(self, tokens: Tokens):
        self.check_tokens(tokens)
        n = self.cfg.image_size // self.cfg.patch
        ids = tokens.ids
        if ids.shape[1] < n * n:  # decode a prefix: the missing tail is the mean code
            fill = torch.zeros(ids.shape[0], n * n - ids.shape[1], dtype=ids.dtype)
            ids = torch.cat([ids, fill], 1)
        z = rearrange(self.quantizer.ids_to_codes(ids), "b (h w) d -> b d h w", h=n)
        return ((self.decoder(z) + 1) / 2).clamp(0, 1)

    def forward(self, x) -> TokenizerOutput:
        q = self._quantize(x)
        recon = (self.decoder(rearrange(q.quantized, "b h w d -> b d h w")) + 1) / 2
        return TokenizerOutput(recon=recon, tokens=Tokens(q.ids.flatten(1), meta=self.token_meta()), losses=q.losses)


def remap_state_dict(sd, cfg):
    """'Official' layout of the toy: enc./vq./dec. prefixes; `step` is training-only."""
    out = {}
    for k, v in sd.items():
        if k == "step":
            continue
        k = k.replace("enc.", "encoder.", 1).replace("vq.embed", "quantizer.codebook", 1).replace("dec.", "decoder.", 1)
        out[k] = v
    return out


def from_official_config(config, state_dict, metadata):
    config = dict(config or {})
    return ToyConfig(**{k: v for k, v in config.items() if k in ToyConfig.__dataclass_fields__})


VARIANTS = (
    Variant("toy-16", ToyConfig(), pretrained=PretrainedCfg("toy-org/toy-16", filename="toy.safetensors", license="mit"),
            description="Toy image tokenizer for tests."),
    Variant("toy-embedded", ToyConfig(), embedded="toy/embedded", official=False, description="Toy, embedded."),
)

FAMILY = FamilySpec(
    name="toy", tokenizer=ToyTokenizer, config=ToyConfig, variants=VARIANTS,
    remap_state_dict=remap_state_dict, from_official_config=from_official_config,
    paper="none (test-only)", tiny_config=ToyConfig(),
)
