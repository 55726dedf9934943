"""Mesh I/O for the 3D tokenizers: read and write meshes, normalise them to the unit cube, sample
surface points with normals, label occupancy of query points, and extract a mesh from an occupancy
grid by marching cubes.

Conventions: the unit cube is [-1, 1]^3; `normalize_mesh` centres a mesh's bounding box at the
origin and scales its longest side to span [-bound, bound] (bound 0.9 by default, leaving room for
marching cubes at the grid's border). Surface samples are `[N, 6]` float32: xyz then the unit normal
of the face they lie on. Occupancy uses the generalised winding number (libigl's
`fast_winding_number`, Barill et al. 2018), which is exact for watertight meshes; for others inside
and outside are not defined, so `occupancy` refuses them unless `require_watertight=False`.

Dependencies (extra `[mesh]`): trimesh (read/write OBJ, PLY, STL, GLB, OFF), libigl (occupancy),
scikit-image (marching cubes). Every write is atomic.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoo.geometry import _trimesh, grid_points, marching_cubes, normalize_mesh, sample_surface  # noqa: F401 (re-exported)
from zoo.io import atomic_write

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".glb", ".gltf", ".off")
WRITE_SUFFIXES = (".obj", ".ply", ".stl", ".glb", ".off")


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------
def load_mesh(path: str | os.PathLike) -> Any:
    """Read a mesh file (OBJ, PLY, STL, GLB/GLTF, OFF) -> trimesh.Trimesh (scenes are merged)."""
    trimesh = _trimesh()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No mesh file at {path}.")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise ValueError(f"{path.name}: unsupported mesh type {path.suffix!r}; accepted: {', '.join(MESH_SUFFIXES)}.")
    try:
        mesh = trimesh.load(str(path), force="mesh", process=True)
    except Exception as e:
        raise ValueError(f"{path} could not be read as a mesh ({type(e).__name__}: {e}).") from e
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError(f"{path} holds no triangles (a point cloud or an empty scene); a surface mesh is needed.")
    return mesh


def save_mesh(path: str | os.PathLike, mesh) -> Path:
    """Write a trimesh.Trimesh to .obj / .ply / .stl / .glb / .off (atomically)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise ValueError(f"save_mesh writes {', '.join(WRITE_SUFFIXES)}; got {path.name!r}.")
    return atomic_write(path, lambda tmp: mesh.export(tmp, file_type=suffix[1:]))


# ----------------------------------------------------------------------------------------------
# geometry
# ----------------------------------------------------------------------------------------------
def check_watertight(mesh, name: str = "the mesh") -> None:
    """Raise a ValueError when `mesh` is not watertight (occupancy is then undefined)."""
    if not mesh.is_watertight:
        raise ValueError(
            f"{name} is not watertight ({len(mesh.vertices)} vertices, {len(mesh.faces)} faces; it has holes or "
            "non-manifold edges), so inside and outside are not defined and occupancy labels would be wrong. "
            "Repair it first (e.g. trimesh.repair.fill_holes, ManifoldPlus or a TSDF remesh), or pass "
            "require_watertight=False to accept winding-number labels anyway."
        )


def occupancy(mesh, queries, require_watertight: bool = True, name: str = "the mesh") -> Tensor:
    """Inside (True) / outside of `mesh` for query points [Q, 3] -> bool [Q], by the generalised
    winding number (> 0.5 inside). Needs libigl (`pip install libigl`)."""
    try:
        import igl
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("Occupancy labels need libigl: pip install libigl (extra [mesh]).") from e
    if require_watertight:
        check_watertight(mesh, name)
    q = queries.detach().cpu().double().numpy() if isinstance(queries, Tensor) else np.asarray(queries, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 3:
        raise ValueError(f"query points must be [Q, 3]; got shape {list(q.shape)}.")
    v = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    f = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    w = igl.fast_winding_number(v, f, np.ascontiguousarray(q))
    return torch.from_numpy(w > 0.5)


# ----------------------------------------------------------------------------------------------
# what the CLI calls
# ----------------------------------------------------------------------------------------------
def load_points_for(tok, path: str | os.PathLike, seed: int = 0) -> Tensor:
    """Read a mesh file as input for the 3D tokenizer `tok` -> [1, N, 6] (xyz + normals) float32:
    normalised to the unit cube as the model was trained, N = tok's `num_points` (seeded sampling)."""
    mesh = load_mesh(path)
    num_points = int(getattr(tok, "num_points", 0) or getattr(getattr(tok, "cfg", None), "num_points", 0) or 4096)
    bound = float(getattr(getattr(tok, "cfg", None), "normalize_bound", 0.9))
    return sample_surface(normalize_mesh(mesh, bound), num_points, seed=seed)[None]


def save_decoded(out_base: str | os.PathLike, decoded, level: float = 0.5) -> Path:
    """Write one decoded 3D item beside `out_base`: an occupancy grid [R, R, R] (probabilities) is
    meshed by marching cubes and written as `<out_base>.ply`; a trimesh.Trimesh is written as is."""
    out_base = Path(out_base)
    trimesh = _trimesh()
    if isinstance(decoded, trimesh.Trimesh):
        mesh = decoded
    else:
        g = decoded
        if isinstance(g, Tensor) and g.dim() == 4 and g.shape[0] == 1:
            g = g[0]
        mesh = marching_cubes(g, level=level)
    return save_mesh(out_base.with_name(out_base.name + ".ply"), mesh)  # appended: `a.v1` -> `a.v1.ply`


__all__ = [
    "MESH_SUFFIXES", "load_mesh", "save_mesh", "normalize_mesh", "sample_surface", "check_watertight",
    "occupancy", "grid_points", "marching_cubes", "load_points_for", "save_decoded",
]
