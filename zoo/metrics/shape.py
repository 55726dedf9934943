"""3D shape metrics: Chamfer distance and F-score from surface samples, volume IoU from occupancy.

Sampling counts are arguments and are reported with the numbers; nearest neighbours by scipy's cKDTree.
"""

from __future__ import annotations

import numpy as np

from torch import Tensor


def _np(x) -> np.ndarray:
    return x.detach().double().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)


def _nn_dists(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial import cKDTree

    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != 3 or b.shape[1] != 3:
        raise ValueError(f"point sets must be [N, 3]; got {list(a.shape)} and {list(b.shape)}.")
    if len(a) == 0 or len(b) == 0:
        raise ValueError("point sets must not be empty.")
    return cKDTree(b).query(a)[0], cKDTree(a).query(b)[0]


def chamfer_distance(a, b, squared: bool = False) -> float:
    """Symmetric Chamfer distance between point sets [N, 3] and [M, 3]: mean of both directions'
    mean nearest-neighbour distances (L1-style, i.e. Euclidean distances) or their squares."""
    d_ab, d_ba = _nn_dists(_np(a), _np(b))
    if squared:
        d_ab, d_ba = d_ab**2, d_ba**2
    return float((d_ab.mean() + d_ba.mean()) / 2)


def f_score(pred, target, threshold: float = 0.02) -> float:
    """F-score at distance `threshold`: harmonic mean of precision (pred within threshold of target)
    and recall (target within threshold of pred)."""
    d_pt, d_tp = _nn_dists(_np(pred), _np(target))
    precision, recall = float((d_pt < threshold).mean()), float((d_tp < threshold).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def volume_iou(occ_a, occ_b) -> float:
    """Intersection over union of two boolean occupancy arrays of equal shape."""
    a, b = np.asarray(_np(occ_a) > 0.5), np.asarray(_np(occ_b) > 0.5)
    if a.shape != b.shape:
        raise ValueError(f"occupancies must share a shape; got {a.shape} and {b.shape}.")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


__all__ = ["chamfer_distance", "f_score", "volume_iou"]
