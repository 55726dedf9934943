"""Mesh geometry below the tokenizers: normalise a mesh to the unit cube, sample surface points with
normals, lay out query grids, and extract a mesh from an occupancy grid by marching cubes. No files:
reading and writing meshes is zoo.media.mesh, which re-exports these. The 3D tokenizers (VAT) import
this module, so that zoo.tokenizers imports nothing from zoo.media.

Conventions: the unit cube is [-1, 1]^3; `normalize_mesh` centres a mesh's bounding box at the
origin and scales its longest side to span [-bound, bound]. Surface samples are `[N, 6]` float32:
xyz then the unit normal of the face they lie on. Dependencies (extra `[mesh]`): trimesh,
scikit-image (marching cubes), imported inside the functions.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _trimesh():
    try:
        import trimesh
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("Mesh I/O needs trimesh: pip install 'tokenizer-zoo[mesh]'.") from e
    return trimesh


def normalize_mesh(mesh, bound: float = 0.9):
    """A copy of `mesh` with its bounding box centred at the origin and its longest side spanning
    [-bound, bound] (so the whole mesh lies in [-bound, bound]^3 within the unit cube [-1, 1]^3)."""
    if not 0 < bound <= 1:
        raise ValueError(f"bound must lie in (0, 1]; got {bound}.")
    lo, hi = mesh.bounds
    extent = float((hi - lo).max())
    if not np.isfinite(extent) or extent <= 0:
        raise ValueError(f"The mesh has a degenerate bounding box (extent {extent}); nothing to normalise.")
    out = mesh.copy()
    out.apply_translation(-(lo + hi) / 2)
    out.apply_scale(2 * bound / extent)
    return out


def sample_surface(mesh, num_points: int, seed: int = 0) -> Tensor:
    """`num_points` points on the surface (uniform by area) with their face normals -> [N, 6] float32.

    Seeded: the same mesh, count and seed give the same points."""
    trimesh = _trimesh()
    if num_points < 1:
        raise ValueError(f"num_points must be at least 1; got {num_points}.")
    pts, face = trimesh.sample.sample_surface(mesh, num_points, seed=np.random.default_rng(seed))
    normals = mesh.face_normals[face]
    return torch.from_numpy(np.concatenate([pts, normals], axis=1).astype(np.float32))


def grid_points(resolution: int, bound: float = 1.0) -> Tensor:
    """Cell-centre-free lattice of resolution^3 points spanning [-bound, bound]^3 -> [R^3, 3] in
    (x, y, z) "ij" order, so that `values.reshape(R, R, R)[i, j, k]` is the value at (x_i, y_j, z_k)."""
    if resolution < 2:
        raise ValueError(f"grid resolution must be at least 2; got {resolution}.")
    axis = torch.linspace(-bound, bound, resolution)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([x, y, z], dim=-1).reshape(-1, 3)


def marching_cubes(grid, level: float = 0.5, bound: float = 1.0):
    """Occupancy (probability) grid [R, R, R] over [-bound, bound]^3 (as `grid_points` lays it out)
    -> trimesh.Trimesh of its `level` iso-surface. An all-inside or all-outside grid has no surface:
    that is a ValueError."""
    from skimage import measure

    trimesh = _trimesh()
    g = grid.detach().float().cpu().numpy() if isinstance(grid, Tensor) else np.asarray(grid, dtype=np.float32)
    if g.ndim != 3 or len(set(g.shape)) != 1:
        raise ValueError(f"marching_cubes takes a cubic grid [R, R, R]; got shape {list(g.shape)}.")
    if not np.isfinite(g).all():
        raise ValueError("the occupancy grid holds NaN or infinite values.")
    if not (g.min() < level < g.max()):
        raise ValueError(
            f"the occupancy grid has no surface at level {level} (values in [{g.min():.3g}, {g.max():.3g}]): "
            "the decoded shape is empty or fills the whole cube."
        )
    # pad by one outside cell so that surfaces touching the border close
    g = np.pad(g, 1, mode="constant", constant_values=min(float(g.min()), level - 1e-3))
    r = g.shape[0] - 2
    step = 2 * bound / (r - 1)
    verts, faces, normals, _ = measure.marching_cubes(g, level=level, spacing=(step, step, step))
    verts = verts - bound - step  # undo the padding offset: index 1 -> -bound
    # skimage orients faces for gradient "descent" (values fall outward): inside > level, as ours
    return trimesh.Trimesh(vertices=verts, faces=faces[:, ::-1], vertex_normals=-normals, process=True)
