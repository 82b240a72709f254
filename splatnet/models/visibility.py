"""Cross-view visibility: thin out Gaussians that stand in front of what another camera of the
same frame sees.

Each view's pixel-aligned Gaussians say what that camera sees along each ray: nothing in front
of its own Gaussian at that cell. A Gaussian predicted from another view that lands in that
free space is either a floater (a depth error in its own view) or the nearer of two copies of
one surface (where two cameras overlap, both predict it). Either way it is drawn over what the
other camera saw: its opacity is scaled by ``config.visibility.factor``. Only views of the same
frame are compared (a car that moved between frames is not a floater). Measured on training
clips and then on the held-out ones (docs/benchmarks.md, "Cross-view visibility").

No weights; no gradient through which Gaussians are chosen (the scaling itself is a constant
factor on the opacity).
"""

from __future__ import annotations

import torch
from torch import Tensor

from splatnet.cameras import Cameras, project_points


def in_front_of_other_views(means: Tensor, depth: Tensor, cameras: Cameras,
                            frames: list[list[int]], margin: float) -> Tensor:
    """``[B, N]`` bool: the Gaussians that lie in front of another same-frame view's surface.

    Args:
        means: ``[B, N, 3]`` world centres, ``N = V · h · w`` ordered (view, row, column): the
            Gaussians of view ``v`` at cell ``(i, j)``.
        depth: ``[B, V, 1, h, w]`` each view's own camera depth per cell (``inf`` where a cell
            hides nothing, e.g. the ego's own body).
        cameras: batch ``[B]``, V cameras at the full image size (``W × H``).
        frames: ``[B][V]`` frame of each view (:func:`splatnet.models.cost_volume.frame_ranks`).
        margin: a Gaussian counts when its depth in view ``u`` is under ``(1 − margin)`` times
            ``depth[u]`` at the cell it projects to (in front of the camera, inside the image).
    """
    b, v, _, h, w = depth.shape
    n = means.shape[1]
    per_view = n // v
    out = torch.zeros(b, n, dtype=torch.bool, device=means.device)
    with torch.no_grad():
        K = cameras.K.float()
        w2c = cameras.world_to_cam.float()
        sx, sy = w / cameras.width, h / cameras.height
        for bi in range(b):
            mu = means[bi].detach().float()  # [N, 3]
            source = torch.arange(v, device=means.device).repeat_interleave(per_view)
            frame = torch.tensor(frames[bi], device=means.device)
            for u in range(v):
                others = (frame[source] == frame[u]) & (source != u)
                if not bool(others.any()):
                    continue
                uv, z = project_points(mu, K[bi, u][None], w2c[bi, u][None])
                uv, z = uv[0], z[0]
                col = (uv[:, 0] * sx).floor()
                row = (uv[:, 1] * sy).floor()
                inside = others & (z > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
                idx = torch.nonzero(inside).squeeze(1)
                there = depth[bi, u, 0].float()[row[idx].long(), col[idx].long()]
                out[bi, idx[z[idx] < there * (1.0 - margin)]] = True
    return out
