"""Flow-matching samplers: the model gives velocities, the sampler integrates (diffusers style).

Shared by the rectified-flow decoders of FlexTok and Selftok. Convention (rectified flow, as both
upstreams): x_t = t * noise + (1 - t) * x_0, t = 1 is pure noise, the model predicts the velocity
v = noise - x_0, and sampling integrates dx/dt = v from t = 1 down to t = 0 with Euler steps
x <- x - (t_i - t_{i+1}) * v(x, t_i). Layout after diffusers' FlowMatchEulerDiscreteScheduler
(https://github.com/huggingface/diffusers, Apache-2.0): timestep schedules are plain functions, one
Euler loop, guidance as an option of the loop.

Guidance combines a conditional and an unconditional velocity:
- classifier-free guidance (Ho & Salimans, arXiv 2207.12598): v = v_u + s (v_c - v_u);
- adaptive projected guidance, APG (Sadat et al., arXiv 2410.02416) with eta = 0: a momentum average
  of v_c - v_u, clipped in L2 norm, and only its part orthogonal to v_c is added. Defaults are those
  of FlexTok's MinRFPipeline (github.com/apple/ml-flextok, Apple sample-code license).

Usage:
    x = euler(lambda x, t: model(x, t), noise, uniform_timesteps(25))
    x = euler(lambda x, t: model(cat[x, x], t, cat[cond, null]).chunk(2), noise, 25, guidance=Guidance(7.5, apg=True))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import Tensor

Timestep = Union[float, Tensor]
VelocityFn = Callable[[Tensor, Timestep], Union[Tensor, tuple[Tensor, Tensor]]]


# ----------------------------------------------------------------------------------------------
# timestep schedules: grids from t = 1 (noise) down to t = 0 (data), steps + 1 points
# ----------------------------------------------------------------------------------------------
def uniform_timesteps(steps: int) -> list[float]:
    """[1, (N-1)/N, ..., 1/N, 0] as Python floats, each i / N correctly rounded (minRF / FlexTok)."""
    _check_steps(steps)
    return [i / steps for i in range(steps, -1, -1)]


def linspace_timesteps(steps: int, device=None) -> Tensor:
    """torch.linspace(1, 0, N + 1) in float32: [N + 1] (Selftok's RectifiedFlow with shift 1).

    Not bitwise equal to uniform_timesteps: linspace rounds differently at some points, and the
    Euler steps multiply by float32 differences of the grid."""
    _check_steps(steps)
    return torch.linspace(1.0, 0.0, steps + 1, device=device)


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"A flow sampler needs a positive integer number of steps; got {steps!r}.")


# ----------------------------------------------------------------------------------------------
# guidance
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Guidance:
    """How euler() combines (v_cond, v_uncond): plain CFG, or APG when apg=True."""

    scale: float | Callable[[float], float]  # guidance scale s, or a function of t (1 = the conditional velocity)
    apg: bool = False  # adaptive projected guidance instead of plain CFG
    momentum: float = -0.5  # APG: running <- (v_c - v_u) + momentum * running (MinRFPipeline's value)
    norm_threshold: float = 2.5  # APG: clip the running difference to this L2 norm per item

    def scale_at(self, t: Timestep) -> float:
        return float(self.scale(float(t))) if callable(self.scale) else float(self.scale)


def cfg(v_cond: Tensor, v_uncond: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance: v_u + s (v_c - v_u); s = 1 gives v_cond. Any matching shapes."""
    return v_uncond + scale * (v_cond - v_uncond)


def apg(v_cond: Tensor, diff: Tensor, scale: float, norm_threshold: float = 2.5) -> Tensor:
    """Adaptive projected guidance, eta = 0: diff (the momentum-averaged v_c - v_u) is clipped to L2
    norm norm_threshold per item, and only its part orthogonal to v_cond is added, times (s - 1).
    v_cond, diff: [B, C, H, W] -> [B, C, H, W]. The projection runs in float64, as upstream."""
    norm = diff.norm(p=2, dim=(-1, -2, -3), keepdim=True)  # [B, 1, 1, 1]
    diff = diff * torch.minimum(torch.ones_like(norm), norm_threshold / norm)
    d64, unit = diff.double(), F.normalize(v_cond.double().flatten(1), dim=1).view_as(v_cond)
    parallel = (d64 * unit).sum(dim=(-1, -2, -3), keepdim=True) * unit
    orthogonal = (d64 - parallel).to(v_cond.dtype)
    return v_cond + (scale - 1) * orthogonal


# ----------------------------------------------------------------------------------------------
# the Euler loop
# ----------------------------------------------------------------------------------------------
def euler(velocity: VelocityFn, x: Tensor, timesteps: int | Tensor, guidance: Guidance | None = None) -> Tensor:
    """Integrate dx/dt = v from timesteps[0] (noise) to timesteps[-1] with Euler steps.

    velocity(x, t) -> v, shaped like x; with guidance, -> (v_cond, v_uncond) (one batched call
    may compute both). t is the grid point as given: a Python float for an int grid, a 0-d tensor
    (on the grid's device) for a tensor grid.
    timesteps: a grid tensor [N + 1] (x <- x - (t_i - t_{i+1}) v), or an int N for
    uniform_timesteps(N) with x <- x - v / N, the correctly rounded v * (1 / N) (FlexTok's arithmetic).
    x: the noise at timesteps[0], any shape -> the sample at timesteps[-1], same shape.
    """
    uniform = not isinstance(timesteps, Tensor)
    grid = uniform_timesteps(timesteps) if uniform else timesteps
    running = torch.zeros_like(x) if guidance is not None and guidance.apg else None
    for i in range(len(grid) - 1):
        t = grid[i]
        if guidance is None:
            v = velocity(x, t)
        else:
            s = guidance.scale_at(t)
            v_c, v_u = velocity(x, t)
            if guidance.apg:
                running = (v_c - v_u) + guidance.momentum * running
                v = apg(v_c, running, s, guidance.norm_threshold)
            else:
                v = cfg(v_c, v_u, s)
        x = x - v / timesteps if uniform else x - (grid[i] - grid[i + 1]).to(x.device) * v
    return x
