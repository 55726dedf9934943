"""Test-only tokenizers for the training kit: a tiny audio VQ autoencoder (`toy_audio`) and a tiny
image tokenizer with a rectified-flow decoder (`toy_flow`). With the image `toy` of toy_family.py
they prove the training programs before the real families land. Registered only in tests
(`register()` / the launcher tests/programs/launch.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from toy_family import PlainVQ
from zoo.api import FlowOutput, Tokenizer, TokenizerOutput, Tokens
from zoo.inputs import prepare_audio, prepare_images
from zoo.registry import FamilySpec, Variant


# ----------------------------------------------------------------------------------------------
# audio: conv encoder (stride 4 x 4), plain VQ, transposed-conv decoder
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToyAudioConfig:
    sample_rate: int = 8000
    dim: int = 16
    hidden: int = 16
    codebook_size: int = 64


class ToyAudio(Tokenizer):
    family = "toy_audio"
    modality = "audio"
    config_class = ToyAudioConfig
    hop = 16

    def __init__(self, cfg: ToyAudioConfig):
        super().__init__(cfg)
        h = cfg.hidden
        self.encoder = nn.Sequential(nn.Conv1d(1, h, 8, 4, 2), nn.ELU(), nn.Conv1d(h, cfg.dim, 8, 4, 2))
        self.quantizer = PlainVQ(cfg.dim, cfg.codebook_size)
        self.decoder = nn.Sequential(nn.ConvTranspose1d(cfg.dim, h, 8, 4, 2), nn.ELU(), nn.ConvTranspose1d(h, 1, 8, 4, 2), nn.Tanh())

    @property
    def codebook_size(self):
        return self.cfg.codebook_size

    @property
    def token_rate(self):
        return self.cfg.sample_rate / self.hop

    def example_input(self, batch_size=2, generator=None):
        return torch.rand(batch_size, 1, 800, generator=generator) * 2 - 1, {"sample_rate": self.cfg.sample_rate}

    def _pad(self, x):
        t = x.shape[-1]
        return nn.functional.pad(x, (0, (-t) % self.hop)), t

    def _quantize(self, x):
        z = rearrange(self.encoder(x), "b d t -> b t d")  # [B, T/16, D]
        return self.quantizer(z)

    @torch.inference_mode()
    def encode(self, x, sample_rate=None) -> Tokens:
        x = prepare_audio(x, name="ToyAudio", sample_rate=sample_rate, model_rate=self.cfg.sample_rate)
        x, t = self._pad(x)
        q = self._quantize(x)
        return Tokens(q.ids, layout="1d", meta=self.token_meta(sample_rate=self.cfg.sample_rate, num_samples=t))

    @torch.inference_mode()
    def decode(self, tokens: Tokens):
        self.check_tokens(tokens)
        z = rearrange(self.quantizer.ids_to_codes(tokens.ids), "b t d -> b d t")
        y = self.decoder(z)
        return y[..., : tokens.meta.get("num_samples", y.shape[-1])]

    def forward(self, x) -> TokenizerOutput:
        x, t = self._pad(x)
        q = self._quantize(x)
        recon = self.decoder(rearrange(q.quantized, "b t d -> b d t"))[..., :t]
        return TokenizerOutput(recon=recon, tokens=Tokens(q.ids), losses=q.losses)


# ----------------------------------------------------------------------------------------------
# image with a rectified-flow decoder: x_t = (1 - t) * noise + t * x, velocity target x - noise
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToyFlowConfig:
    image_size: int = 16
    patch: int = 4
    dim: int = 8
    hidden: int = 16
    codebook_size: int = 32


class ToyFlow(Tokenizer):
    family = "toy_flow"
    modality = "image"
    config_class = ToyFlowConfig

    def __init__(self, cfg: ToyFlowConfig):
        super().__init__(cfg)
        self.encoder = nn.Conv2d(3, cfg.dim, cfg.patch, stride=cfg.patch)
        self.quantizer = PlainVQ(cfg.dim, cfg.codebook_size)
        self.cond = nn.ConvTranspose2d(cfg.dim, cfg.hidden, cfg.patch, stride=cfg.patch)
        self.decoder = nn.Sequential(nn.Conv2d(3 + 1 + cfg.hidden, cfg.hidden, 3, padding=1), nn.SiLU(),
                                     nn.Conv2d(cfg.hidden, 3, 3, padding=1))

    @property
    def codebook_size(self):
        return self.cfg.codebook_size

    @property
    def token_rate(self):
        return (self.cfg.image_size // self.cfg.patch) ** 2

    def example_input(self, batch_size=2, generator=None):
        s = self.cfg.image_size
        return torch.rand(batch_size, 3, s, s, generator=generator), {}

    def _quantize(self, x):
        return self.quantizer(rearrange(self.encoder(x * 2 - 1), "b d h w -> b h w d"))

    def _velocity(self, xt, t, codes):  # xt [B, 3, H, W] in [-1, 1]-ish, t [B], codes [B, h, w, D]
        c = self.cond(rearrange(codes, "b h w d -> b d h w"))
        tt = t.view(-1, 1, 1, 1).expand(-1, 1, *xt.shape[-2:])
        return self.decoder(torch.cat([xt, tt, c], 1))

    def flow_forward(self, x, *, t, noise) -> FlowOutput:
        q = self._quantize(x)
        x1 = x * 2 - 1
        xt = (1 - t.view(-1, 1, 1, 1)) * noise + t.view(-1, 1, 1, 1) * x1
        return FlowOutput(velocity=self._velocity(xt, t, q.quantized), target=x1 - noise, tokens=Tokens(q.ids.flatten(1)),
                          losses=q.losses)

    @torch.inference_mode()
    def encode(self, x) -> Tokens:
        x = prepare_images(x, name="ToyFlow", size=(self.cfg.image_size,) * 2)
        return Tokens(self._quantize(x).ids.flatten(1), meta=self.token_meta())

    @torch.inference_mode()
    def decode(self, tokens: Tokens, steps: int = 4, generator=None):
        self.check_tokens(tokens)
        n = self.cfg.image_size // self.cfg.patch
        codes = rearrange(self.quantizer.ids_to_codes(tokens.ids), "b (h w) d -> b h w d", h=n)
        x = torch.randn(tokens.batch_size, 3, self.cfg.image_size, self.cfg.image_size, generator=generator)
        for i in range(steps):  # Euler steps from noise (t=0) to data (t=1)
            t = torch.full((x.shape[0],), i / steps)
            x = x + self._velocity(x, t, codes) / steps
        return ((x + 1) / 2).clamp(0, 1)

    def forward(self, x) -> TokenizerOutput:
        tokens = Tokens(self._quantize(x).ids.flatten(1), meta=self.token_meta())
        return TokenizerOutput(recon=self.decode(tokens), tokens=tokens)


def _spec(name, cls, cfg_cls):
    return FamilySpec(name=name, tokenizer=cls, config=cfg_cls, variants=(Variant(f"{name}-tiny", cfg_cls()),),
                      remap_state_dict=lambda sd, cfg: dict(sd), from_official_config=lambda c, sd, m: cfg_cls(**(c or {})),
                      paper="none (test-only)", tiny_config=cfg_cls())


TOY_AUDIO = _spec("toy_audio", ToyAudio, ToyAudioConfig)
TOY_FLOW = _spec("toy_flow", ToyFlow, ToyFlowConfig)
MODULES = {"toy": "toy_family", "toy_audio": "train_toys_audio", "toy_flow": "train_toys_flow"}


def toy_hooks():
    """toy_flow's training hooks (zoo.train.families.HOOKS): the pass is looked up on the class at each call, so that
    tests can replace ToyFlow.flow_forward."""
    from zoo.train.families import TrainingHooks

    return {"toy_flow": TrainingHooks(flow_forward=lambda model, x, **kw: model.flow_forward(x, **kw))}


def register() -> None:
    """Add the toy families to zoo's registry in this process (tests and the test launcher only)."""
    import sys
    import types

    from zoo import registry

    for name, spec in (("toy_audio", TOY_AUDIO), ("toy_flow", TOY_FLOW)):
        mod = types.ModuleType(MODULES[name])
        mod.FAMILY = spec
        sys.modules[MODULES[name]] = mod
    registry.FAMILIES = tuple(registry.FAMILIES) + tuple(n for n in MODULES if n not in registry.FAMILIES)
    from zoo.train.families import HOOKS

    HOOKS.update(toy_hooks())
    real = registry._module_name
    if not getattr(real, "_toys", False):
        def module_name(name: str) -> str:
            return MODULES[name] if name in MODULES else real(name)

        module_name._toys = True
        registry._module_name = module_name
