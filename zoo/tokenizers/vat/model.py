"""VAT, the Variational Tokenizer: 3D shapes -> multi-scale discrete tokens -> occupancy -> mesh.

Paper: Jinzhi Zhang, Feng Xiong, Mu Xu, "3D representation in 512-Byte: Variational tokenizer is the
key for autoregressive 3D generation", arXiv 2412.02202 (2024). Upstream: github.com/sparse-mvs-2/VAT
(head 044fc6a, README and figures only: no code, config or weights were released; no licence given).
This is therefore a re-implementation from the paper's text and figure, with every number that the
paper does not state chosen here (models/vat/NOTES.md lists them). It is not checkpoint-compatible
with anything official, because nothing official exists.

Pipeline (as the paper describes it):
  surface points [B, N, 6] (xyz + normals) -> Fourier features -> Linear          [B, N, W]
  [learnable latent tokens; point tokens] -> self-attention transformer ("in-context"),
      keep the latent positions only                                              [B, L, W]
  Gaussian bottleneck: mean, log-variance, z = mean + sigma * eps, KL to N(0, I)   [B, L, C]
  variational vector quantisation: multi-scale residual quantisation of z along the token axis,
      token counts growing per scale (VAR-style, zoo.quantizers.multiscale)         ids [B, sum(scales)]
  [Linear(z_hat) + latent positions; learnable triplane tokens] -> transformer,
      keep the triplane positions                                                 [B, 3 r^2, W']
  CNN upsampling -> triplane [B, 3, C_p, R, R]; query points -> bilinear features (sum of the three
      planes) -> MLP -> occupancy logit; marching cubes on a grid gives the mesh.
Training has two stages (paper): a continuous VAE first (no quantiser: zoo.train.vat's pass, made of this
model's parts), then fine-tuning with the quantiser (forward). Losses: occupancy BCE + kl_weight * KL + the quantiser's commitment
and codebook terms. At inference the posterior mean is quantised (deterministic tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.api import Tokenizer, TokenizerOutput, Tokens, inference
from zoo.inputs import check_finite
from zoo.blocks.norm import LayerNorm
from zoo.blocks.transformer import TransformerBlock
from zoo.blocks.triplane import TriplaneUpsampler, fourier_features, sample_triplane
from zoo.quantizers.multiscale import GaussianBottleneck, MultiScaleResidualQuantizer

PAPER = "arXiv:2412.02202"
UPSTREAM = "https://github.com/sparse-mvs-2/VAT (README only; no code or weights released)"


@dataclass(frozen=True)
class VATConfig:
    """Defaults: our paper-scale design for the 512-byte setting (511 tokens of 8 bits; the paper
    gives neither code nor these numbers, see models/vat/NOTES.md)."""

    # input
    num_points: int = 4096  # surface points sampled per shape when encoding meshes
    use_normals: bool = True  # points carry unit normals: [B, N, 6] (else [B, N, 3])
    num_freqs: int = 8  # Fourier bands of the xyz embedding (pi * 2^k, k < num_freqs)
    normalize_bound: float = 0.9  # meshes are normalised into [-bound, bound]^3 before sampling
    # in-context encoder
    width: int = 512
    encoder_depth: int = 8
    num_heads: int = 8
    mlp_ratio: float = 4.0  # hidden width of the gated MLPs = mlp_ratio * width (2/3 of it, SwiGLU)
    num_latents: int = 256  # learnable latent tokens (= the finest scale's token count)
    # Gaussian bottleneck and multi-scale residual quantiser
    latent_dim: int = 32  # channels of z and of the codebook vectors
    kl_weight: float = 1e-3
    scales: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # tokens per scale, coarse -> fine
    codebook_size: int = 256  # one codebook shared by every scale (8-bit ids)
    num_phi: int = 4  # partially shared refinement convs (VAR's phi)
    phi_ratio: float = 0.5
    commitment_weight: float = 0.25
    codebook_weight: float = 1.0
    # triplane decoder
    decoder_width: int = 512
    decoder_depth: int = 8
    triplane_tokens: int = 16  # side r of each plane's token grid (3 r^2 triplane tokens)
    upsample_factor: int = 4  # the triplane has side r * upsample_factor
    plane_channels: int = 32
    mlp_hidden: int = 128  # occupancy MLP width (two hidden layers)
    grid_resolution: int = 128  # default marching-cubes grid side for decode()
    query_chunk: int = 131072  # query points per decoder call (bounds decode memory)


def _hidden(width: int, ratio: float) -> int:
    return int(2 * ratio * width / 3)


class VATEncoder(nn.Module):
    """points [B, N, 3 or 6] -> latent tokens [B, L, W] (in-context: latents and points attend jointly)."""

    def __init__(self, cfg: VATConfig):
        super().__init__()
        self.num_freqs = cfg.num_freqs
        in_features = 3 * (2 * cfg.num_freqs + 1) + (3 if cfg.use_normals else 0)
        self.point_embed = nn.Linear(in_features, cfg.width)
        self.latents = nn.Parameter(torch.randn(cfg.num_latents, cfg.width) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.width, cfg.num_heads, _hidden(cfg.width, cfg.mlp_ratio), norm_affine=True)
            for _ in range(cfg.encoder_depth)
        )
        self.norm = LayerNorm(cfg.width, affine=True)

    def forward(self, points: Tensor) -> Tensor:
        b, num_latents = points.shape[0], self.latents.shape[0]
        feats = fourier_features(points[..., :3], self.num_freqs)  # [B, N, 3(2F+1)]
        feats = torch.cat([feats, points[..., 3:]], dim=-1)  # + normals
        x = torch.cat([self.latents.expand(b, -1, -1), self.point_embed(feats)], dim=1)  # [B, L + N, W]
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, :num_latents])  # [B, L, W]: only the latent positions are kept


class VATDecoder(nn.Module):
    """quantised latents [B, L, C] -> triplane [B, 3, C_p, R, R]; triplane + queries -> occupancy logits."""

    def __init__(self, cfg: VATConfig):
        super().__init__()
        r, w = cfg.triplane_tokens, cfg.decoder_width
        self.r = r
        self.proj_in = nn.Linear(cfg.latent_dim, w)
        self.latent_pos = nn.Parameter(torch.randn(cfg.num_latents, w) * 0.02)
        self.plane_tokens = nn.Parameter(torch.randn(3 * r * r, w) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(w, cfg.num_heads, _hidden(w, cfg.mlp_ratio), norm_affine=True)
            for _ in range(cfg.decoder_depth)
        )
        self.norm = LayerNorm(w, affine=True)
        self.upsample = TriplaneUpsampler(w, cfg.plane_channels, cfg.upsample_factor, hidden=2 * cfg.plane_channels)
        self.occupancy = nn.Sequential(
            nn.Linear(cfg.plane_channels, cfg.mlp_hidden), nn.GELU(),
            nn.Linear(cfg.mlp_hidden, cfg.mlp_hidden), nn.GELU(),
            nn.Linear(cfg.mlp_hidden, 1),
        )

    def triplane(self, z: Tensor) -> Tensor:
        b, num_latents = z.shape[:2]
        x = torch.cat([self.proj_in(z) + self.latent_pos, self.plane_tokens.expand(b, -1, -1)], dim=1)  # [B, L + 3r^2, W']
        for block in self.blocks:
            x = block(x)
        x = self.norm(x[:, num_latents:])  # [B, 3 r^2, W']
        planes = x.reshape(b, 3, self.r, self.r, -1).permute(0, 1, 4, 2, 3)  # [B, 3, W', r, r] (row = v, col = u)
        return self.upsample(planes)  # [B, 3, C_p, R, R]

    def logits(self, planes: Tensor, queries: Tensor) -> Tensor:
        """planes [B, 3, C_p, R, R], queries [B, Q, 3] in [-1, 1] -> occupancy logits [B, Q]."""
        return self.occupancy(sample_triplane(planes, queries))[..., 0]


class VAT(Tokenizer):
    """Surface point clouds (or meshes) -> multi-scale tokens [B, sum(scales)] -> occupancy grids / meshes."""

    family = "vat"
    fp32_modules = ("bottleneck", "quantizer")  # precision policy: the Gaussian bottleneck and the multi-scale residual VQ stay fp32
    modality = "3d"
    config_class = VATConfig

    def __init__(self, cfg: VATConfig):
        super().__init__(cfg)
        if cfg.scales[-1] != cfg.num_latents:
            raise ValueError(f"VAT's finest scale must hold all num_latents={cfg.num_latents} tokens; got scales {cfg.scales}.")
        self.encoder = VATEncoder(cfg)
        self.bottleneck = GaussianBottleneck(cfg.width, cfg.latent_dim)
        self.quantizer = MultiScaleResidualQuantizer(
            cfg.latent_dim, cfg.codebook_size, cfg.scales, num_phi=cfg.num_phi, phi_ratio=cfg.phi_ratio,
            commitment_weight=cfg.commitment_weight, codebook_weight=cfg.codebook_weight,
        )
        self.decoder = VATDecoder(cfg)

    # -- properties ----------------------------------------------------------------------------

    @property
    def token_rate(self) -> float:
        return float(sum(self.cfg.scales))  # tokens per shape

    @property
    def num_points(self) -> int:
        return self.cfg.num_points

    @property
    def in_channels(self) -> int:
        return 6 if self.cfg.use_normals else 3

    def bytes_per_shape(self, num_scales: int | None = None) -> float:
        """Size of one shape's ids at log2(codebook_size) bits each (the first num_scales scales)."""
        import math

        n = sum(self.cfg.scales[: num_scales or len(self.cfg.scales)])
        return n * math.log2(self.cfg.codebook_size) / 8

    # -- input ---------------------------------------------------------------------------------
    def prepare_points(self, x, seed: int = 0) -> Tensor:
        """Points [B, N, C] in the unit cube, a trimesh mesh, or a list of meshes -> [B, N, C] float32.

        Meshes are normalised (bound cfg.normalize_bound) and sampled with cfg.num_points points, seeded."""
        if not isinstance(x, Tensor):
            meshes = x if isinstance(x, (list, tuple)) else [x]
            if not meshes or not all(hasattr(m, "faces") and hasattr(m, "vertices") for m in meshes):
                raise TypeError(
                    f"VAT encodes point clouds [B, N, {self.in_channels}] (xyz{' + normals' if self.cfg.use_normals else ''}) "
                    f"or trimesh meshes; got {type(x).__name__}. Read files with zoo.media.mesh.load_mesh()."
                )
            from zoo import geometry as M

            pts = [M.sample_surface(M.normalize_mesh(m, self.cfg.normalize_bound), self.cfg.num_points, seed=seed) for m in meshes]
            x = torch.stack(pts)[..., : self.in_channels]
        c = self.in_channels
        want = f"[B, N, {c}] ({'xyz + unit normals' if c == 6 else 'xyz'})"
        if x.dim() == 2:
            raise ValueError(f"VAT expects a batch of point clouds {want}; got shape {list(x.shape)}. Use x.unsqueeze(0).")
        if x.dim() != 3 or x.shape[-1] != c:
            hint = " This model needs normals: sample them with zoo.media.mesh.sample_surface()." if c == 6 and x.dim() == 3 and x.shape[-1] == 3 else ""
            raise ValueError(f"VAT expects point clouds {want}; got shape {list(x.shape)}.{hint}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"VAT got an empty point batch of shape {list(x.shape)}.")
        if not x.is_floating_point():
            raise TypeError(f"VAT expects float points; got {x.dtype}.")
        check_finite(x, "VAT input points")
        extent = float(x[..., :3].abs().max())
        if extent > 1 + 1e-4:
            raise ValueError(
                f"VAT expects points inside the unit cube [-1, 1]^3; got coordinates up to {extent:.3g}. "
                "Normalise the shape first (zoo.media.mesh.normalize_mesh)."
            )
        if c == 6 and float(x[..., 3:].norm(dim=-1).max()) > 1 + 1e-3:
            raise ValueError("VAT expects unit normals in channels 3:6; some have length above 1. Normalise them.")
        return x.float()

    # -- pieces --------------------------------------------------------------------------------
    def _check_scales(self, tokens: Tokens) -> None:
        sizes = tokens.meta.get("scale_sizes")
        sizes = list(sizes) if sizes is not None else self.quantizer.scale_sizes[: self.quantizer.scales_in(tokens.ids)]
        if sizes != self.quantizer.scale_sizes[: len(sizes)]:
            raise ValueError(f"These tokens have scale sizes {sizes}; this VAT's scales are {self.quantizer.scale_sizes}.")
        if tokens.ids.dim() != 2 or tokens.ids.shape[1] != sum(sizes):
            raise ValueError(f"VAT ids must be [B, {sum(sizes)}] for scales {sizes}; got shape {list(tokens.ids.shape)}.")

    def occupancy_logits(self, planes: Tensor, queries: Tensor) -> Tensor:
        """planes [B, 3, C_p, R, R], queries [B, Q, 3] -> logits [B, Q], in chunks of cfg.query_chunk."""
        parts = [self.decoder.logits(planes, q) for q in queries.split(self.cfg.query_chunk, dim=1)]
        return torch.cat(parts, dim=1)

    def _coarse_to_fine(self, planes: Tensor, r: int, coarse: int, level: float) -> Tensor:
        """Occupancy probabilities [B, r, r, r]: exact near `level` crossings of a coarse grid, interpolated elsewhere."""
        from zoo.geometry import grid_points

        b = planes.shape[0]
        grid = grid_points(coarse).to(self.device).expand(b, -1, -1)
        low = self.occupancy_logits(planes, grid).sigmoid().reshape(b, 1, coarse, coarse, coarse)
        # grid_points spans [-1, 1] end to end, as align_corners=True does
        probs = F.interpolate(low, size=(r, r, r), mode="trilinear", align_corners=True).reshape(b, -1)
        inside = (low > level).float()
        # uncertain coarse points: a neighbour is on the other side, or the value itself is close to the level
        unsure = (F.max_pool3d(inside, 3, 1, 1) != -F.max_pool3d(-inside, 3, 1, 1)) | ((low - level).abs() < 0.25)
        unsure = F.max_pool3d(unsure.float(), 3, 1, 1)  # and their neighbours
        near = F.interpolate(unsure, size=(r, r, r), mode="nearest").reshape(b, -1) > 0
        fine = grid_points(r).to(self.device)
        for i in range(b):  # each shape has its own set of points near its surface
            sel = near[i].nonzero().squeeze(1)
            if sel.numel():
                probs[i, sel] = self.occupancy_logits(planes[i : i + 1], fine[sel][None]).sigmoid()[0].to(probs.dtype)
        return probs.reshape(b, r, r, r)

    # -- contract ------------------------------------------------------------------------------
    @inference
    def encode(self, x, seed: int = 0) -> Tokens:
        """points [B, N, 6] (or 3 without normals) in [-1, 1]^3, or meshes -> Tokens [B, sum(scales)],
        layout "multiscale" (scales concatenated coarse -> fine; meta["scale_sizes"])."""
        points = self.prepare_points(x, seed=seed).to(self.device)
        with torch.inference_mode():
            post = self.bottleneck(self.encoder(points), sample=False)  # the mean: deterministic tokens
            ids = self.quantizer(post.mean).ids  # [B, sum(scales)]
        return Tokens(ids=ids.cpu(), layout="multiscale",
                      meta=self.token_meta(scale_sizes=list(self.quantizer.scale_sizes), num_points=int(points.shape[1])))

    @inference
    def decode(self, tokens: Tokens, resolution: int | None = None, output: str = "occupancy", level: float = 0.5,
               coarse: int | None = None):
        """Tokens (all scales, or the first s via tokens.first_scales(s)) -> occupancy probabilities
        [B, R, R, R] on the grid zoo.media.mesh.grid_points(R) over [-1, 1]^3 (R = resolution, default
        cfg.grid_resolution); output="mesh" returns a list of B trimesh meshes (marching cubes at `level`).

        coarse: evaluate coarse-to-fine (as Occupancy Networks' MISE) instead of at all R^3 points: a
        coarse^3 grid first, trilinearly upsampled, then the exact value at every fine point within one
        coarse cell of a `level` crossing. Away from the surface the values are interpolated, so the
        grid is not the dense one, but its `level` set is, unless a part thinner than a coarse cell
        falls between coarse points. None: dense."""
        if output not in ("occupancy", "mesh"):
            raise ValueError(f"VAT.decode output must be 'occupancy' or 'mesh'; got {output!r}.")
        self.check_tokens(tokens)
        self._check_scales(tokens)
        r = int(resolution or self.cfg.grid_resolution)
        if r < 2:
            raise ValueError(f"decode resolution must be at least 2; got {r}.")
        if coarse is not None and not 2 <= int(coarse) < r:
            raise ValueError(f"decode coarse must lie in [2, resolution={r}); got {coarse}.")
        from zoo.geometry import grid_points

        with torch.inference_mode():
            z = self.quantizer.ids_to_quantized(tokens.ids.to(self.device))  # [B, L, C]
            planes = self.decoder.triplane(z)
            if coarse is None:
                queries = grid_points(r).to(self.device).expand(z.shape[0], -1, -1)  # [B, R^3, 3]
                probs = self.occupancy_logits(planes, queries).sigmoid().reshape(-1, r, r, r)
            else:
                probs = self._coarse_to_fine(planes, r, int(coarse), level)
            probs = probs.float().cpu()
        if output == "occupancy":
            return probs
        from zoo.geometry import marching_cubes

        return [marching_cubes(p, level=level) for p in probs]

    def forward(self, x: Tensor, queries: Tensor | None = None, occupancy: Tensor | None = None,
                generator: torch.Generator | None = None) -> TokenizerOutput:
        """Training pass. x: points [B, N, C]; queries [B, Q, 3] (default: a 16^3 grid); occupancy
        [B, Q] in {0, 1} (labels: adds the BCE loss). recon: occupancy logits [B, Q]."""
        points, queries = self.training_inputs(x, queries, occupancy)
        post = self.bottleneck(self.encoder(points), generator=generator)
        q = self.quantizer(post.sample)
        return self.occupancy_output(q.quantized, q, queries, occupancy, {"kl": self.cfg.kl_weight * post.kl, **q.losses})

    def training_inputs(self, x: Tensor, queries: Tensor | None, occupancy: Tensor | None) -> tuple[Tensor, Tensor]:
        """forward's inputs checked: -> (points [B, N, C], queries [B, Q, 3])."""
        points = self.prepare_points(x)
        if occupancy is not None and queries is None:
            raise ValueError("VAT.forward got occupancy labels without their query points (queries=[B, Q, 3]).")
        if queries is None:
            from zoo.geometry import grid_points

            queries = grid_points(16).to(points.device).expand(points.shape[0], -1, -1)
        if queries.dim() != 3 or queries.shape[0] != points.shape[0] or queries.shape[-1] != 3:
            raise ValueError(f"queries must be [B={points.shape[0]}, Q, 3]; got shape {list(queries.shape)}.")
        return points, queries

    def occupancy_output(self, z: Tensor, q, queries: Tensor, occupancy: Tensor | None,
                         losses: dict[str, Tensor]) -> TokenizerOutput:
        """The decoder on latents z [B, L, C] at queries [B, Q, 3] -> TokenizerOutput (recon: logits [B, Q]); q is
        the quantiser's output (tokens, metrics); with occupancy labels [B, Q], adds the BCE loss to `losses`."""
        logits = self.occupancy_logits(self.decoder.triplane(z), queries)  # [B, Q]
        metrics = dict(q.metrics)
        if occupancy is not None:
            if occupancy.shape != logits.shape:
                raise ValueError(f"occupancy labels must be [B, Q] = {list(logits.shape)}; got {list(occupancy.shape)}.")
            target = occupancy.to(logits.dtype)
            losses["occupancy"] = F.binary_cross_entropy_with_logits(logits, target)
            metrics["occupancy_accuracy"] = ((logits > 0) == (target > 0.5)).float().mean().detach()
        tokens = Tokens(ids=q.ids.detach(), layout="multiscale", meta=self.token_meta(scale_sizes=list(self.quantizer.scale_sizes)))
        return TokenizerOutput(recon=logits, tokens=tokens, losses=losses, metrics=metrics)

    def example_input(self, batch_size: int = 2, generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
        """Points on ellipsoids of random radii (with their normals): [B, num_points, C]."""
        n = min(self.cfg.num_points, 512)
        d = F.normalize(torch.randn(batch_size, n, 3, generator=generator), dim=-1)  # unit sphere
        radii = 0.3 + 0.6 * torch.rand(batch_size, 1, 3, generator=generator)
        pts = d * radii
        normals = F.normalize(d / radii, dim=-1)  # gradient of the ellipsoid's implicit function
        x = torch.cat([pts, normals], dim=-1) if self.cfg.use_normals else pts
        return x, {}

