"""Vector quantization (VQ-VAE) and residual vector quantization (RVQ).

Papers:
  - van den Oord et al., "Neural Discrete Representation Learning", arXiv:1711.00937 (VQ-VAE:
    nearest-neighbour lookup, straight-through gradients, codebook and commitment losses).
  - Razavi et al., "Generating Diverse High-Fidelity Images with VQ-VAE-2", arXiv:1906.00446
    (EMA codebook updates with Laplace smoothing).
  - Yu et al., "Vector-quantized Image Modeling with Improved VQGAN", arXiv:2110.04627
    (factorised low-dimensional codes with in/out projections, l2-normalised / cosine lookup).
  - Zeghidour et al., "SoundStream", arXiv:2107.03312, and Defossez et al., "EnCodec",
    arXiv:2210.13438 (residual VQ, k-means initialisation, dead-code restart, quantizer dropout).
Reference implementations read (not copied): lucidrains/vector-quantize-pytorch (MIT),
facebookresearch/encodec (MIT), descriptinc/descript-audio-codec (MIT).

Why not `vector_quantize_pytorch.VectorQuantize`: its state-dict layout (`_codebook.embed [1, K, D]`)
and eval-mode behaviour (k-means on the first forward, even in eval) are not what our families and
checkpoints need; this file gives fixed buffer names, eval mode that never touches a buffer, and a
chunked nearest-neighbour search that never builds an [N, K, D] tensor.

State-dict names (final; families remap official checkpoints onto them):
  VectorQuantizer: `codebook` [K, Dc] (parameter when learned, buffer when EMA),
                   `cluster_size` [K] (EMA usage count, buffer, both modes),
                   `embed_sum` [K, Dc] (EMA sum of assigned vectors, buffer, EMA mode only),
                   `initialized` [] bool (k-means has run; set it True for loaded checkpoints),
                   `project_in.{weight,bias}` / `project_out.{weight,bias}` when codebook_dim != dim.
  ResidualVQ:      `layers.{i}.<the above>`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.quantizers.base import Quantizer, QuantizerOutput

__all__ = ["VectorQuantizer", "ResidualVQ", "nearest_codes", "kmeans", "usage_metrics"]

# Rows of the [N, K] distance matrix computed at once: bounds memory to chunk * K floats.
_NN_CHUNK_ELEMENTS = 1 << 19  # 2 MB of fp32 distances: chunks that stay in cache (~2-4x faster on CPU than 64 MB)


def _dist_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _all_reduce_(t: Tensor) -> Tensor:
    """Sum `t` over data-parallel ranks in place (no-op when not distributed)."""
    if _dist_ready():
        torch.distributed.all_reduce(t)
    return t


def _broadcast_(t: Tensor) -> Tensor:
    """Copy rank 0's `t` to every rank (no-op when not distributed), so codebooks stay in sync."""
    if _dist_ready():
        torch.distributed.broadcast(t, src=0)
    return t


@torch.no_grad()
def nearest_codes(x: Tensor, codebook: Tensor, chunk_elements: int = _NN_CHUNK_ELEMENTS) -> Tensor:
    """Index of the nearest codebook row (squared Euclidean) for each row of x.

    x: [N, D], codebook: [K, D] -> ids: [N] int64. Uses ||x||^2 - 2 x.c + ||c||^2 with a matmul,
    chunked over N so that about `chunk_elements` distances exist at once, but at least D rows per chunk
    (wide codes make the GEMM the cost, and it wants rows: 750 x 4096 x 512 on 2 CPU threads takes 39 ms in
    chunks of 128 rows, 25 ms in chunks of 512); never [N, K, D]. Ties go to the lowest index (torch.argmin).
    """
    n, k = x.shape[0], codebook.shape[0]
    c2 = codebook.pow(2).sum(-1)  # [K]
    x2 = x.pow(2).sum(-1, keepdim=True)  # [N, 1]
    rows = max(1, chunk_elements // max(k, 1), x.shape[1])
    out = torch.empty(n, dtype=torch.long, device=x.device)
    for start in range(0, n, rows):
        # x2 - 2 x.c in one GEMM (the same values as x2 - (2 x) @ c.T: scaling by 2 is exact), then + c2 in place
        d = torch.addmm(x2[start : start + rows].expand(-1, k), x[start : start + rows], codebook.t(), alpha=-2)
        out[start : start + rows] = d.add_(c2).argmin(-1)  # [n_chunk]
    return out


@torch.no_grad()
def kmeans(x: Tensor, num_clusters: int, iters: int = 10, cosine: bool = False) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on x [N, D] -> (means [K, D], counts [K]). Initial means are random rows of x
    (global torch RNG; seed it for reproducibility). Empty clusters keep their previous mean."""
    n, d = x.shape
    if n >= num_clusters:
        idx = torch.randperm(n, device=x.device)[:num_clusters]
    else:
        idx = torch.randint(0, n, (num_clusters,), device=x.device)
    means = x[idx].clone()  # [K, D]
    counts = torch.zeros(num_clusters, device=x.device, dtype=x.dtype)
    for _ in range(iters):
        ids = nearest_codes(x, means)  # [N]
        counts = torch.bincount(ids, minlength=num_clusters).to(x.dtype)  # [K]
        # index_put_(accumulate) rather than index_add_: the latter is ~1000x slower on a busy multi-thread CPU
        sums = torch.zeros_like(means).index_put_((ids,), x, accumulate=True)  # [K, D]
        new = sums / counts.clamp(min=1)[:, None]
        if cosine:
            new = F.normalize(new, dim=-1)
        means = torch.where(counts[:, None] > 0, new, means)
    return means, counts


@torch.no_grad()
def usage_metrics(ids: Tensor, codebook_size: int) -> dict[str, Tensor]:
    """perplexity (exp of the entropy of the batch code histogram; codebook_size = uniform use) and
    usage (fraction of codes hit at least once in the batch) for ids of any shape."""
    # counts of the codes present only (not a [K] histogram): cheap for 64k-entry codebooks
    counts = ids.reshape(-1).unique(return_counts=True)[1].float()  # [num used]
    p = counts / counts.sum().clamp(min=1)
    entropy = -(p * torch.log(p)).sum()
    return {"perplexity": entropy.exp(), "usage": torch.tensor(counts.numel() / codebook_size, device=ids.device)}


class VectorQuantizer(Quantizer):
    """Nearest-neighbour VQ with an EMA or a learned codebook.

    z: [..., dim] (channel last) -> QuantizerOutput(quantized [..., dim], ids [...] int64, losses, metrics).

    Args:
      dim: input channels.
      codebook_size: K.
      codebook_dim: Dc, the lookup space; project_in/project_out are nn.Linear when Dc != dim.
      output_dim: width of `quantized` (default dim); project_out is nn.Linear(Dc, output_dim) when
        they differ (Selftok: 512-wide features, 16-wide codes handed on as they are).
      cosine: l2-normalise the projected input and the codebook rows before the lookup (the
        quantized code is then a unit vector, e.g. TiTok / One-D-Piece, Selftok).
      ema_decay: None -> learned codebook (parameter, trained by the codebook loss);
        a float (e.g. 0.99) -> EMA codebook (buffer; `cluster_size` and `embed_sum` are EMA'd, the
        codebook is `embed_sum / laplace_smoothed(cluster_size)`).
      kmeans_init: on the first *training* batch, set the codebook by k-means on that batch.
        Never runs in eval mode (an un-initialised quantizer in eval uses its random codebook).
      kmeans_iters: Lloyd iterations for that k-means.
      dead_code_threshold: in training, codes whose EMA usage `cluster_size` falls below this are
        replaced by random vectors of the current batch (0 disables). `cluster_size` starts at 1 for
        every code; in learned mode it is an EMA with decay `ema_decay or 0.99`.
      commitment_weight: weight of ||z - sg(q)||^2 (loss "commitment").
      codebook_weight: weight of ||sg(z) - q||^2 (loss "codebook", learned codebook only).
      eps: Laplace smoothing of the EMA cluster sizes.

    Eval mode is deterministic and never writes a buffer. In training, the EMA update, k-means
    and restarts run under no_grad and are summed over ranks under torch.distributed.
    The straight-through estimator is used whenever the input requires grad; otherwise the
    quantized output is exactly the (projected) codebook entry.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        codebook_dim: int | None = None,
        *,
        output_dim: int | None = None,
        cosine: bool = False,
        ema_decay: float | None = None,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        dead_code_threshold: float = 0.0,
        commitment_weight: float = 0.25,
        codebook_weight: float = 1.0,
        eps: float = 1e-5,
    ):
        super().__init__()
        if dim <= 0 or codebook_size <= 0:
            raise ValueError(f"VectorQuantizer needs dim > 0 and codebook_size > 0; got {dim}, {codebook_size}.")
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be None (learned codebook) or in [0, 1); got {ema_decay}.")
        codebook_dim = dim if codebook_dim is None else codebook_dim
        self.dim, self.codebook_dim, self.codebook_size = dim, codebook_dim, codebook_size
        self.cosine, self.ema_decay = cosine, ema_decay
        self.kmeans_init, self.kmeans_iters = kmeans_init, kmeans_iters
        self.dead_code_threshold = dead_code_threshold
        self.commitment_weight, self.codebook_weight, self.eps = commitment_weight, codebook_weight, eps

        self.project_in = nn.Linear(dim, codebook_dim) if codebook_dim != dim else nn.Identity()
        output_dim = dim if output_dim is None else output_dim
        self.output_dim = output_dim
        self.project_out = nn.Linear(codebook_dim, output_dim) if codebook_dim != output_dim else nn.Identity()

        codebook = torch.randn(codebook_size, codebook_dim)
        if cosine:
            codebook = F.normalize(codebook, dim=-1)
        if ema_decay is None:
            self.codebook = nn.Parameter(codebook)
        else:
            self.register_buffer("codebook", codebook)
            self.register_buffer("embed_sum", codebook.clone())
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("initialized", torch.tensor(not kmeans_init))

    @property
    def uses_ema(self) -> bool:
        return self.ema_decay is not None

    def fsdp_unsupported(self) -> str | None:
        """Why FSDP2 cannot train this quantizer, or None. A learned codebook (a parameter) that training writes into
        inside forward -- dead-code restarts, a k-means init still to come -- would be written into the copy FSDP2
        gathers from the shards and frees after the pass: the writes would be silently lost. DDP writes into each
        full replica; EMA codebooks are buffers; a frozen codebook is never written."""
        if self.uses_ema or not self.codebook.requires_grad:
            return None
        if self.dead_code_threshold > 0:
            return (f"its learned codebook restarts dead codes (dead_code_threshold={self.dead_code_threshold}) by "
                    "writing into it inside forward")
        if not bool(self.initialized):
            return "its learned codebook is k-means initialised by writing into it inside the first forward"
        return None

    def extra_repr(self) -> str:
        mode = f"ema_decay={self.ema_decay}" if self.uses_ema else "learned"
        return f"dim={self.dim}, codebook_size={self.codebook_size}, codebook_dim={self.codebook_dim}, cosine={self.cosine}, {mode}"

    # ------------------------------------------------------------------ lookups
    def normalized_codebook(self) -> Tensor:
        """[K, Dc]: the codebook as the lookup sees it (l2-normalised rows when cosine)."""
        return F.normalize(self.codebook, dim=-1) if self.cosine else self.codebook

    def codes_to_ids(self, codes: Tensor) -> Tensor:
        """codes [..., Dc] (lookup space) -> nearest ids [...]."""
        if codes.shape[-1] != self.codebook_dim:
            raise ValueError(f"codes must end in codebook_dim={self.codebook_dim}; got shape {list(codes.shape)}.")
        flat = codes.reshape(-1, self.codebook_dim).float()  # [N, Dc]
        if self.cosine:
            flat = F.normalize(flat, dim=-1)
        return nearest_codes(flat, self.normalized_codebook().float()).reshape(codes.shape[:-1])

    def ids_to_codes(self, ids: Tensor) -> Tensor:
        """ids [...] -> codes [..., Dc] in the lookup space (before project_out)."""
        self.check_ids(ids)
        return F.embedding(ids, self.normalized_codebook())

    def ids_to_quantized(self, ids: Tensor) -> Tensor:
        """ids [...] -> [..., dim], what forward returns as `quantized` for those ids."""
        return self.project_out(self.ids_to_codes(ids))

    # ------------------------------------------------------------------ forward
    def forward(self, z: Tensor) -> QuantizerOutput:
        if z.shape[-1] != self.dim:
            raise ValueError(f"VectorQuantizer expects channel-last input [..., {self.dim}]; got shape {list(z.shape)}.")
        lead = z.shape[:-1]
        x = self.project_in(z)  # [..., Dc]
        if self.cosine:
            x = F.normalize(x, dim=-1)
        flat = x.reshape(-1, self.codebook_dim)  # [N, Dc]

        if self.training and self.kmeans_init and not bool(self.initialized):
            self._kmeans_init_(flat.detach().float())

        ids = nearest_codes(flat.detach().float(), self.normalized_codebook().detach().float())  # [N]
        q = F.embedding(ids, self.normalized_codebook()).to(x.dtype)  # [N, Dc]

        losses: dict[str, Tensor] = {}
        if self.commitment_weight > 0:
            losses["commitment"] = self.commitment_weight * F.mse_loss(flat, q.detach())
        if not self.uses_ema and self.codebook_weight > 0:
            losses["codebook"] = self.codebook_weight * F.mse_loss(q, flat.detach())

        if self.training:
            self._update_(flat.detach().float(), ids)

        if flat.requires_grad:
            q = flat + (q - flat).detach()  # straight-through: d q / d flat = I
        quantized = self.project_out(q.reshape(*lead, self.codebook_dim))  # [..., dim]
        return QuantizerOutput(
            quantized=quantized,
            ids=ids.reshape(lead),
            losses=losses,
            metrics=usage_metrics(ids, self.codebook_size),
        )

    # ------------------------------------------------------------------ training-only state updates
    @torch.no_grad()
    def _kmeans_init_(self, flat: Tensor) -> None:
        means, counts = kmeans(flat, self.codebook_size, self.kmeans_iters, cosine=self.cosine)
        _broadcast_(means)
        _broadcast_(counts)
        self.codebook.data.copy_(means)
        self.cluster_size.copy_(counts)
        if self.uses_ema:
            self.embed_sum.copy_(means * counts[:, None])
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update_(self, flat: Tensor, ids: Tensor) -> None:
        decay = self.ema_decay if self.uses_ema else 0.99
        flat = flat.to(self.codebook.dtype)
        counts = torch.bincount(ids, minlength=self.codebook_size).to(flat.dtype)  # [K]
        _all_reduce_(counts)
        self.cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        if self.uses_ema:
            sums = torch.zeros_like(self.embed_sum).index_put_((ids,), flat, accumulate=True)  # [K, Dc]
            _all_reduce_(sums)
            self.embed_sum.mul_(decay).add_(sums, alpha=1 - decay)
            n = self.cluster_size.sum()
            smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n  # [K]
            new = self.embed_sum / smoothed[:, None]
            self.codebook.copy_(F.normalize(new, dim=-1) if self.cosine else new)
        if self.dead_code_threshold > 0:
            self._restart_dead_codes_(flat)

    @torch.no_grad()
    def _restart_dead_codes_(self, flat: Tensor) -> None:
        # cluster_size is summed over ranks, so `dead` agrees on every rank; rank 0's samples are used.
        dead = self.cluster_size < self.dead_code_threshold  # [K]
        num_dead = int(dead.sum())
        if num_dead == 0 or flat.shape[0] == 0:
            return
        if flat.shape[0] >= num_dead:
            pick = torch.randperm(flat.shape[0], device=flat.device)[:num_dead]
        else:
            pick = torch.randint(0, flat.shape[0], (num_dead,), device=flat.device)
        samples = flat[pick].to(self.codebook.dtype)  # [num_dead, Dc]
        if self.cosine:
            samples = F.normalize(samples, dim=-1)
        _broadcast_(samples)
        self.codebook.data[dead] = samples
        self.cluster_size[dead] = self.dead_code_threshold
        if self.uses_ema:
            self.embed_sum[dead] = samples * self.dead_code_threshold


class ResidualVQ(Quantizer):
    """Residual VQ: layer i quantizes what layers < i left over; the output is the sum.

    z: [..., dim] -> QuantizerOutput(quantized [..., dim], ids [..., Q] int64 (layer axis LAST), ...).
    Decode from the first q layers with `ids_to_quantized(ids[..., :q])`.

    Each layer is a `VectorQuantizer(dim, codebook_size, codebook_dim, **vq_kwargs)` with its own
    projections. As in EnCodec and vector-quantize-pytorch, the residual passed on is detached, so
    every layer's straight-through output carries gradient to z.
    quantizer_dropout: in training, with this probability per batch item (dim 0), only a random
    number of layers in 1..Q contributes to that item's output and losses (SoundStream / DAC);
    pass `generator=` to forward to seed the draw. Eval mode uses all (or `num_quantizers`) layers.
    """

    def __init__(
        self,
        dim: int,
        num_quantizers: int,
        codebook_size: int,
        codebook_dim: int | None = None,
        quantizer_dropout: float = 0.0,
        **vq_kwargs,
    ):
        super().__init__()
        if num_quantizers <= 0:
            raise ValueError(f"ResidualVQ needs num_quantizers >= 1; got {num_quantizers}.")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout is a probability in [0, 1]; got {quantizer_dropout}.")
        self.dim, self.codebook_size, self.num_codebooks = dim, codebook_size, num_quantizers
        self.quantizer_dropout = quantizer_dropout
        self.layers = nn.ModuleList(
            VectorQuantizer(dim, codebook_size, codebook_dim, **vq_kwargs) for _ in range(num_quantizers)
        )

    @property
    def num_quantizers(self) -> int:
        return len(self.layers)

    def _check_num(self, n: int | None) -> int:
        n = self.num_quantizers if n is None else n
        if not 1 <= n <= self.num_quantizers:
            raise ValueError(f"num_quantizers must be in [1, {self.num_quantizers}]; got {n}.")
        return n

    def forward(self, z: Tensor, num_quantizers: int | None = None, generator: torch.Generator | None = None) -> QuantizerOutput:
        if z.shape[-1] != self.dim or z.ndim < 2:
            raise ValueError(f"ResidualVQ expects channel-last input [B, ..., {self.dim}]; got shape {list(z.shape)}.")
        n = self._check_num(num_quantizers)
        keep = None  # [B] number of layers each item uses, only under quantizer dropout
        if self.training and self.quantizer_dropout > 0:
            b = z.shape[0]
            drop = torch.rand(b, generator=generator, device=generator.device if generator else "cpu") < self.quantizer_dropout
            rand_n = torch.randint(1, n + 1, (b,), generator=generator, device=generator.device if generator else "cpu")
            keep = torch.where(drop, rand_n, torch.full_like(rand_n, n)).to(z.device)
        bshape = (z.shape[0],) + (1,) * (z.ndim - 1)

        residual, quantized = z, torch.zeros_like(z)
        all_ids, losses, metrics = [], {}, {}
        for i, layer in enumerate(self.layers[:n]):
            out = layer(residual)
            if keep is None:
                quantized = quantized + out.quantized
                weight = None
            else:
                mask = (i < keep).to(z.dtype)  # [B]
                quantized = quantized + out.quantized * mask.view(bshape)
                weight = mask.mean()  # losses count only for items that use this layer
            residual = residual - out.quantized.detach()
            all_ids.append(out.ids)
            for k, v in out.losses.items():
                v = v if weight is None else v * weight
                losses[k] = losses.get(k, 0) + v
            for k, v in out.metrics.items():
                metrics[f"{k}_{i}"] = v
        return QuantizerOutput(quantized=quantized, ids=torch.stack(all_ids, dim=-1), losses=losses, metrics=metrics)

    def codes_to_ids(self, codes: Tensor) -> Tensor:
        """Per-layer codes [..., q, dim] (what ids_to_codes returns) -> ids [..., q]; each layer's
        output is looked up in that layer's codebook, so ids -> codes -> ids is exact."""
        if codes.ndim < 2 or codes.shape[-1] != self.dim or not 1 <= codes.shape[-2] <= self.num_quantizers:
            raise ValueError(
                f"ResidualVQ codes are per-layer outputs [..., q <= {self.num_quantizers}, {self.dim}]; got shape {list(codes.shape)}."
            )
        ids = []
        for i in range(codes.shape[-2]):
            layer = self.layers[i]
            ids.append(layer.codes_to_ids(self._to_lookup_space(layer, codes[..., i, :])))
        return torch.stack(ids, dim=-1)

    @staticmethod
    def _to_lookup_space(layer: VectorQuantizer, out: Tensor) -> Tensor:
        """Invert project_out (least squares) so a layer output can be looked up in its codebook."""
        if isinstance(layer.project_out, nn.Identity):
            return out
        w, b = layer.project_out.weight, layer.project_out.bias  # [dim, Dc], [dim]
        return (out.to(w.dtype) - b) @ torch.linalg.pinv(w).t()  # [..., Dc]

    def ids_to_codes(self, ids: Tensor) -> Tensor:
        """ids [..., q] (q <= Q) -> [..., q, dim]: each layer's output, before summing."""
        q = self._check_ids_shape(ids)
        return torch.stack([self.layers[i].ids_to_quantized(ids[..., i]) for i in range(q)], dim=-2)

    def ids_to_quantized(self, ids: Tensor) -> Tensor:
        """ids [..., q] (any q <= Q, the first q layers) -> [..., dim]."""
        return self.ids_to_codes(ids).sum(-2)

    def _check_ids_shape(self, ids: Tensor) -> int:
        if ids.ndim < 1 or not 1 <= ids.shape[-1] <= self.num_quantizers:
            raise ValueError(
                f"ResidualVQ ids end in the layer axis of size 1..{self.num_quantizers}; got shape {list(ids.shape)}."
            )
        self.check_ids(ids)
        return ids.shape[-1]
