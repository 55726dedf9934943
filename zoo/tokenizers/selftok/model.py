"""Selftok: discrete visual tokens ordered by a diffusion decoder.

Paper: "Selftok: Discrete Visual Tokens of Autoregression, by Diffusion, and for Reasoning"
(Selftok Team), arXiv 2505.07538. Upstream: github.com/selftok-team/SelftokTokenizer (MIT);
weights: hub repo selftok-team/SelftokTokenizer. Written anew from the paper and a reading of the
upstream code; nothing is copied.

Pipeline (released 512-token model):
  image [B, 3, 256, 256] in [0, 1]
    -> SD3 VAE latent, normalised ((z - 0.0609) * 1.5305): [B, 16, 32, 32]
    -> dual-stream Q-Former encoder: 256 latent patches + 512 learned queries -> [B, 512, 512]
    -> cosine VQ (project 512 -> 16, l2-normalise, nearest of 32,768 unit codes) -> ids [B, 512]
    -> LayerNorm(codes) = the decoder's conditioning [B, 512, 16]
    -> (a) MMDiT rectified-flow decoder, 50 Euler steps: at noise level t only the tokens
           0..k(t) are visible to the image (k = the token schedule, `last_visible_token`), or
       (b) the one-step renderer (an MMDiT fed learned mask tokens instead of noise)
    -> latent -> SD3 VAE decode -> image.

Token order: token 0 is seen at every noise level; high-index tokens only at high noise. Any
prefix decodes (the missing tokens are simply never visible). An AR prior generates them reversed
(upstream README): `zoo.lm.to_lm(tokens, K, order="reversed")`.

Deviations from the upstream code (all numerically neutral; see models/selftok/NOTES.md):
- the sampler computes the visibility mask from the schedule instead of re-running the encoder on
  the noise at every step, and gives the decoder only the visible prefix of the context instead of
  a masked full context (keys that are masked out contribute exact zeros either way);
- the per-token-position adaLN modulations of the context stream do not depend on the noise level,
  so they are computed once per decode call instead of once per step;
- no `.cuda()`: every tensor is created on the input's device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from zoo.api import FlowOutput, Tokenizer, TokenizerOutput, Tokens, inference
from zoo.inputs import check_finite, check_target_psnr, fewest_tokens, prepare_images
from zoo.quantizers.vq import VectorQuantizer
from zoo.samplers import euler, linspace_timesteps

from .config import SelftokConfig, last_visible_token, time_index
from .networks import FlowDecoder, Renderer, SelftokEncoder

PAPER = "arXiv:2505.07538"
UPSTREAM = "https://github.com/selftok-team/SelftokTokenizer"
HUB_ID = "selftok-team/SelftokTokenizer"
LICENSE = "MIT"


# ----------------------------------------------------------------------------------------------
# VAE between pixels and latents
# ----------------------------------------------------------------------------------------------
def _dct_basis(channels: int, device) -> Tensor:
    """Orthonormal rows [channels, 3 * 64]: the lowest-frequency 8x8 DCT basis images of an
    opponent-colour transform (luma gets most of them). A fixed, parameter-free stand-in for the VAE."""
    n = torch.arange(8, dtype=torch.float64)
    dct = torch.cos(math.pi * (2 * n[None] + 1) * n[:, None] / 16) * math.sqrt(2 / 8)
    dct[0] /= math.sqrt(2)  # [8, 8] orthonormal DCT-II
    order = sorted(((u, v) for u in range(8) for v in range(8)), key=lambda uv: (uv[0] + uv[1], uv[0]))
    colour = torch.tensor([[1, 1, 1], [1, -1, 0], [1, 1, -2]], dtype=torch.float64)
    colour = colour / colour.norm(dim=1, keepdim=True)  # orthonormal opponent colours
    chroma = max(1, (channels - channels // 2) // 2)
    per_colour = [channels - 2 * chroma, chroma, chroma]
    rows = []
    for col, count in enumerate(per_colour):
        for u, v in order[:count]:
            img = torch.outer(dct[u], dct[v])  # [8, 8]
            rows.append((colour[col][:, None, None] * img[None]).reshape(-1))  # [3 * 64] in (c, y, x) order
    return torch.stack(rows).float().to(device)


class _LazyVAE:
    """Holds the diffusers AutoencoderKL outside the module tree (it is not part of our weights)."""

    def __init__(self):
        self.model = None

    def get(self, cfg: SelftokConfig, device):
        if self.model is None:
            from .convert import load_vae  # here, not at the top: convert.py imports this module

            self.model = load_vae(cfg)
        return self.model.to(device)


# ----------------------------------------------------------------------------------------------
# the tokenizer
# ----------------------------------------------------------------------------------------------
def _randn(shape, generator: torch.Generator | None, device) -> Tensor:
    """Gaussian noise drawn on the generator's device (so a CPU generator seeds a GPU run too)."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where).to(device)


@dataclass
class SelftokEncoding:
    """Intermediate tensors of one encode: features [B, K, Dq], projected [B, K, code_dim],
    ids [B, K], codes (looked up, after project_out) [B, K, token_dim], cond (decoder input) [B, K, token_dim]."""

    features: Tensor
    projected: Tensor
    ids: Tensor
    codes: Tensor
    cond: Tensor


class Selftok(Tokenizer):
    """Selftok image tokenizer: 1D ordered tokens decoded by a rectified-flow MMDiT or a one-step renderer.

    Images at the API: [B, 3, image_size, image_size] in [0, 1]. Latent-level API (normalised SD3
    latents [B, 16, image_size/8, image_size/8]): encode_latents, decode_latents, render_latents.
    """

    family = "selftok"
    fp32_modules = ("quantizer", "post_norm")  # precision policy: VQ distances and the normalisation of the looked-up codes stay fp32
    modality = "image"
    config_class = SelftokConfig

    def __init__(self, cfg: SelftokConfig):
        super().__init__(cfg)
        self.encoder = SelftokEncoder(cfg)
        # Cosine VQ with an EMA codebook and k-means init on the first training batch, as upstream.
        self.quantizer = VectorQuantizer(
            cfg.query_width, cfg.codebook_size, cfg.code_dim, output_dim=cfg.token_dim, cosine=True,
            ema_decay=cfg.codebook_ema_decay, kmeans_init=True, commitment_weight=cfg.commitment_weight,
            dead_code_threshold=cfg.dead_code_threshold,
        )
        self.post_norm = nn.LayerNorm(cfg.token_dim, eps=1e-6) if cfg.post_norm else nn.Identity()
        if cfg.decoder == "flow":
            self.decoder = FlowDecoder(cfg)
        else:
            self.renderer = Renderer(cfg)
        self._vae = _LazyVAE()

    # -- properties ----------------------------------------------------------------------------

    @property
    def token_rate(self) -> float:
        return float(self.cfg.num_tokens)

    @property
    def has_renderer(self) -> bool:
        return self.cfg.decoder == "renderer"

    @property
    def batch_split(self) -> dict[str, tuple[str, ...]]:
        """Big batches run in exact chunks; the flow decoder draws its noise for the whole batch at once."""
        return {"encode": (), "decode": ()} if self.has_renderer else {"encode": ()}

    @property
    def stochastic_decoder(self) -> bool:
        """The flow decoder starts from noise (pass generator= or noise=); the renderer is deterministic."""
        return not self.has_renderer

    def visible_mask(self, t: Tensor, num_tokens: int | None = None) -> Tensor:
        """Noise level t [B] in [0, 1] -> bool [B, K]: which tokens the decoder sees at t."""
        k = last_visible_token(time_index(t), self.cfg)
        return torch.arange(num_tokens or self.cfg.num_tokens, device=t.device)[None] <= k[:, None]

    # -- pixels <-> latents --------------------------------------------------------------------
    def set_vae(self, vae) -> None:
        """Use an already loaded diffusers AutoencoderKL (e.g. from a local folder) for the image API."""
        self._vae.model = vae

    def images_to_latents(self, images: Tensor) -> Tensor:
        """[B, 3, H, W] in [0, 1] -> normalised latent [B, 16, H/8, W/8] (VAE mode, then (z - shift) * scale)."""
        x = images * 2 - 1
        if self.cfg.vae == "dct":
            basis = _dct_basis(self.cfg.latent_channels, x.device)
            patches = rearrange(x, "b c (h p) (w q) -> b h w (c p q)", p=8, q=8)
            z = rearrange(patches @ basis.t(), "b h w c -> b c h w")
        else:
            vae = self._vae.get(self.cfg, x.device)
            z = vae.encode(x.to(vae.dtype)).latent_dist.mode().float()
        return (z - self.cfg.latent_shift) * self.cfg.latent_scale

    def latents_to_images(self, latents: Tensor) -> Tensor:
        z = latents / self.cfg.latent_scale + self.cfg.latent_shift
        if self.cfg.vae == "dct":
            basis = _dct_basis(self.cfg.latent_channels, z.device)
            patches = rearrange(z, "b c h w -> b h w c") @ basis
            x = rearrange(patches, "b h w (c p q) -> b c (h p) (w q)", p=8, q=8, c=3)
        else:
            vae = self._vae.get(self.cfg, z.device)
            x = vae.decode(z.to(vae.dtype)).sample.float()
        return (x.clamp(-1, 1) + 1) / 2

    # -- encode ---------------------------------------------------------------------------------
    def _check_latents(self, latents: Tensor, name: str = "latents") -> Tensor:
        s, c = self.cfg.latent_size, self.cfg.latent_channels
        if not isinstance(latents, Tensor) or latents.dim() != 4 or latents.shape[1] != c:
            shape = list(latents.shape) if isinstance(latents, Tensor) else type(latents).__name__
            raise ValueError(f"Selftok {name} must be normalised VAE latents [B, {c}, {s}, {s}]; got {shape}.")
        if latents.shape[0] == 0:
            raise ValueError(f"Selftok got an empty batch of {name}.")
        if tuple(latents.shape[-2:]) != (s, s):
            raise ValueError(f"Selftok ({self.cfg.image_size}px) takes {s}x{s} latents; got {latents.shape[-2]}x{latents.shape[-1]}.")
        if not latents.is_floating_point():
            raise TypeError(f"Selftok {name} must be floating point; got {latents.dtype}.")
        check_finite(latents, f"Selftok {name}")
        return latents.float()

    def encode_latents_full(self, latents: Tensor) -> SelftokEncoding:
        """Normalised latents -> every intermediate of the encoder and quantizer (see SelftokEncoding)."""
        latents = self._check_latents(latents)
        with torch.inference_mode():
            features = self.encoder(latents)
            ids = self.quantizer(features).ids
            projected = self.quantizer.project_in(features)
            codes = self.quantizer.ids_to_quantized(ids)
            return SelftokEncoding(features, projected, ids, codes, self.post_norm(codes))

    def encode_latents(self, latents: Tensor) -> Tokens:
        """Normalised SD3 latents [B, 16, s, s] -> Tokens ids [B, K] (layout "1d", ordered)."""
        ids = self.encode_latents_full(latents).ids
        return Tokens(ids=ids, layout="1d", meta=self.token_meta(image_size=self.cfg.image_size, num_tokens=self.cfg.num_tokens))

    @inference
    def encode(self, x: Tensor, *, target_psnr: float | None = None) -> Tokens:
        """Images [B, 3, S, S] in [0, 1] (S = image_size) -> Tokens ids [B, K].

        target_psnr: per item, the fewest tokens whose reconstruction reaches this PSNR in dB; the
            counts go to `Tokens.lengths` (ids stay [B, K]), an item that misses the target keeps K.
            The flow decoder is stochastic, so the search decodes with fixed noise: the default
            steps and the noise of `decode(tokens, generator=torch.Generator().manual_seed(0))` on
            this batch, which reproduces it (the renderer is deterministic). Bisection over k
            (zoo.inputs.fewest_tokens): ceil(log2 K) batched decodes, assuming quality grows with k.
        """
        if target_psnr is not None:
            target_psnr = check_target_psnr(target_psnr)
        s = self.cfg.image_size
        x = prepare_images(x, name="Selftok", size=(s, s))
        with torch.inference_mode():
            latents = self.images_to_latents(x.to(self.device))
        tokens = self.encode_latents(latents)
        if target_psnr is None:
            return tokens
        noise = None if self.has_renderer else self._noise(x.shape[0], None, torch.Generator().manual_seed(0))

        def decode(items: Tensor, part: Tensor, n: Tensor) -> Tensor:
            t = Tokens(ids=part, layout="1d", lengths=n, meta=tokens.meta)
            return self.decode(t) if noise is None else self.decode(t, noise=noise[items])

        lengths = fewest_tokens(x.to(self.device), tokens.ids, target_psnr, decode)
        return Tokens(ids=tokens.ids, layout="1d", lengths=lengths, meta={**tokens.meta, "target_psnr": target_psnr})

    # -- decode ---------------------------------------------------------------------------------
    def _cond(self, tokens: Tokens) -> tuple[Tensor, Tensor | None]:
        """Tokens -> (decoder conditioning [B, n, token_dim], per-item visibility [B, n] or None)."""
        self.check_tokens(tokens)
        if tokens.layout != "1d" or tokens.ids.dim() != 2:
            raise ValueError(f"Selftok decodes 1d tokens [B, n]; got layout {tokens.layout!r} with shape {list(tokens.ids.shape)}.")
        n = tokens.ids.shape[1]
        if n > self.cfg.num_tokens:
            raise ValueError(f"Selftok decodes at most {self.cfg.num_tokens} tokens per image; got {n}.")
        size = tokens.meta.get("image_size")
        if size is not None and int(size) != self.cfg.image_size:
            raise ValueError(f"These tokens encode {size}px images; this Selftok decodes {self.cfg.image_size}px.")
        ids = tokens.ids.to(self.device)
        lengths = None
        if tokens.lengths is not None:
            if int(tokens.lengths.min()) < 1:
                raise ValueError("Selftok needs at least one token per item (token 0 conditions every step); got a length of 0.")
            lengths = torch.arange(n, device=ids.device)[None] < tokens.lengths.to(ids.device)[:, None]
        return self.post_norm(self.quantizer.ids_to_quantized(ids)), lengths

    def _noise(self, b: int, noise: Tensor | None, generator: torch.Generator | None) -> Tensor:
        shape = (b, self.cfg.latent_channels, self.cfg.latent_size, self.cfg.latent_size)
        if noise is None:
            return _randn(shape, generator, self.device)
        if tuple(noise.shape) != shape:
            raise ValueError(f"Selftok noise must have shape {list(shape)}; got {list(noise.shape)}.")
        check_finite(noise, "Selftok noise")
        return noise.to(self.device, torch.float32)

    def _need(self, what: str) -> None:
        if what == "flow" and self.has_renderer:
            raise RuntimeError(
                "This Selftok holds the one-step renderer, not the diffusion decoder; use render_latents() / decode(), "
                "or load the tokenizer checkpoint (e.g. selftok-512) for decode_latents()."
            )
        if what == "renderer" and not self.has_renderer:
            raise RuntimeError(
                "This Selftok holds the diffusion decoder, not the renderer weights; load the renderer checkpoint "
                "(e.g. selftok-512-renderer) for render_latents(), or use decode_latents()."
            )

    def velocity(self, x_t: Tensor, t: Tensor, tokens: Tokens) -> Tensor:
        """One decoder call: x_t [B, C, s, s], t [B] in [0, 1] -> velocity [B, C, s, s].

        The visible tokens are 0..k(t) (the token schedule), further limited by tokens.lengths.
        """
        self._need("flow")
        x_t = self._check_latents(x_t, "x_t")
        t = torch.as_tensor(t, dtype=torch.float32, device=self.device).reshape(-1).expand(x_t.shape[0])
        with torch.inference_mode():
            cond, lengths = self._cond(tokens)
            visible = self.visible_mask(t, cond.shape[1])
            if lengths is not None:
                visible = visible & lengths
            context, mods = self.decoder.embed_context(cond)
            return self.decoder(x_t.to(self.device), t, context, mods, visible)

    def decode_latents(self, tokens: Tokens, *, noise: Tensor | None = None, steps: int | None = None,
                       generator: torch.Generator | None = None) -> Tensor:
        """Tokens -> normalised latents [B, 16, s, s] with the rectified-flow Euler sampler (noise at t = 1)."""
        self._need("flow")
        steps = self.cfg.sampling_steps if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"steps must be at least 1; got {steps}.")
        with torch.inference_mode():
            cond, lengths = self._cond(tokens)
            x = self._noise(cond.shape[0], noise, generator)
            context, mods = self.decoder.embed_context(cond)

            def velocity(x: Tensor, t: Tensor) -> Tensor:  # t: a 0-d CPU float32 grid point
                # Only the visible prefix 0..k(t) enters the decoder: masked keys would contribute exact zeros.
                n_vis = min(int(last_visible_token(time_index(t.reshape(1)), self.cfg)) + 1, cond.shape[1])
                vis = None if lengths is None else lengths[:, :n_vis]
                return self.decoder(x, t.to(x.device).expand(x.shape[0]), context[:, :n_vis], [m[:n_vis] for m in mods], vis)

            return euler(velocity, x, linspace_timesteps(steps))  # CPU grid: the schedule is read as Python ints

    def render_latents(self, tokens: Tokens) -> Tensor:
        """Tokens -> normalised latents [B, 16, s, s] with the one-step renderer."""
        self._need("renderer")
        with torch.inference_mode():
            cond, lengths = self._cond(tokens)
            context, mods = self.renderer.embed_context(cond)
            return self.renderer(context, mods, lengths)

    @inference
    def decode(self, tokens: Tokens, *, noise: Tensor | None = None, steps: int | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """Tokens -> images [B, 3, S, S] in [0, 1]: renderer (one step) when loaded, else the flow sampler."""
        if self.has_renderer:
            if noise is not None or steps is not None:
                raise ValueError("The Selftok renderer decodes in one deterministic step; it takes no noise= or steps=.")
            latents = self.render_latents(tokens)
        else:
            latents = self.decode_latents(tokens, noise=noise, steps=steps, generator=generator)
        with torch.inference_mode():
            return self.latents_to_images(latents)

    # -- training --------------------------------------------------------------------------------
    def flow_noise_shape(self, x: Tensor) -> tuple[int, ...]:
        """The flow runs on the latent: images [B, 3, S, S] -> noise shape [B, C, S/8, S/8]."""
        return (x.shape[0], self.cfg.latent_channels, self.cfg.latent_size, self.cfg.latent_size)

    def flow_forward(self, x: Tensor, *, t: Tensor, noise: Tensor) -> FlowOutput:
        """Training pass for training/train_flow_decoder.py (the zoo.api.FlowOutput agreement).

        x [B, 3, S, S] in [0, 1]; t [B] in [0, 1] (1 = pure noise, as upstream); noise [B, C, S/8, S/8]
        (flow_noise_shape). The frozen VAE gives the normalised latent x0; the encoder, the cosine VQ
        (straight-through, EMA codebook) and the decoder are trained together: x_t = t noise + (1 - t) x0,
        the decoder sees only the tokens visible at t (the schedule's mask, per item), and the velocity
        target is noise - x0. losses: the VQ's (commitment); metrics: its code usage.
        """
        self._need("flow")
        s = self.cfg.image_size
        x = prepare_images(x, name="Selftok", size=(s, s)).to(self.device)
        b = x.shape[0]
        shape = self.flow_noise_shape(x)
        if not isinstance(noise, Tensor) or tuple(noise.shape) != shape:
            got = list(noise.shape) if isinstance(noise, Tensor) else type(noise).__name__
            raise ValueError(f"Selftok flow noise must have the latent's shape {list(shape)} (flow_noise_shape); got {got}.")
        t = torch.as_tensor(t, dtype=torch.float32, device=self.device).reshape(-1)
        if t.shape[0] != b:
            raise ValueError(f"Selftok flow timesteps must be one per image ([{b}]); got shape {list(t.shape)}.")
        if bool(((t < 0) | (t > 1)).any()):
            raise ValueError("Selftok flow timesteps must lie in [0, 1] (1 = pure noise).")
        with torch.no_grad():
            latents = self.images_to_latents(x)  # [B, C, s, s]; the VAE is not trained
        quant = self.quantizer(self.encoder(latents))
        cond = self.post_norm(quant.quantized)  # [B, K, token_dim]
        eps = noise.to(latents.device, latents.dtype)
        tb = t[:, None, None, None]
        x_t = tb * eps + (1 - tb) * latents
        context, mods = self.decoder.embed_context(cond)
        v = self.decoder(x_t, t, context, mods, self.visible_mask(t))  # tokens 0..k(t) visible per item
        tokens = Tokens(ids=quant.ids.detach(), layout="1d", meta=self.token_meta(image_size=s, num_tokens=self.cfg.num_tokens))
        return FlowOutput(velocity=v, target=eps - latents, tokens=tokens, losses=dict(quant.losses), metrics=dict(quant.metrics))

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> TokenizerOutput:
        """Images -> TokenizerOutput. Flow decoder: flow_forward with t = sigmoid(N(0, 1)) (logit-normal) and
        noise ~ N(0, I) from `generator`, losses velocity_mse + the VQ's, recon = the one-step x0 estimate
        x_t - t v. Renderer (encoder and decoder trained on the latent): latent_mse + the VQ's."""
        s = self.cfg.image_size
        x = prepare_images(x, name="Selftok", size=(s, s)).to(self.device)
        if not self.has_renderer:
            b = x.shape[0]
            t = torch.sigmoid(_randn((b,), generator, self.device))
            noise = _randn(self.flow_noise_shape(x), generator, self.device)
            out = self.flow_forward(x, t=t, noise=noise)
            tb = t[:, None, None, None]
            x_t = tb * noise + (1 - tb) * (noise - out.target)  # latents = noise - target
            pred = x_t - tb * out.velocity  # one-step estimate of x0
            losses = {"velocity_mse": F.mse_loss(out.velocity, out.target), **out.losses}
            return TokenizerOutput(recon=self.latents_to_images(pred), tokens=out.tokens, losses=losses)
        with torch.no_grad():
            latents = self.images_to_latents(x)
        quant = self.quantizer(self.encoder(latents))
        context, mods = self.renderer.embed_context(self.post_norm(quant.quantized))
        pred = self.renderer(context, mods)
        losses = {"latent_mse": F.mse_loss(pred, latents), **quant.losses}
        tokens = Tokens(ids=quant.ids.detach(), layout="1d", meta=self.token_meta(image_size=s, num_tokens=self.cfg.num_tokens))
        return TokenizerOutput(recon=self.latents_to_images(pred), tokens=tokens, losses=losses)
