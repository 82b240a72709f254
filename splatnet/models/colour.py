"""Per-camera affine colour (exposure / white balance) compensation, as STORM does.

Real rigs' cameras differ in exposure and white balance, so Gaussians predicted from one camera's
pixels render the wrong colour into another camera. STORM (Yang et al. 2025) gives each rig camera
a learned "affine token" that attends to the scene's image tokens; a linear layer maps it to a
3×4 colour matrix per camera, and the rendered image of each target view of that camera goes
through it before the loss. A novel viewpoint with no camera of its own gets the mean of the
matrices there.

SplatNet is convolutional, so its counterpart of the token is a per-camera summary: the mean over
that camera's context views (all frames) of the depth network's pooled context features and the
image's per-channel mean and standard deviation, next to the same averaged over the whole rig (so
the camera is seen relative to the others). A two-layer MLP maps it to ``(M, b)`` with
``rgb' = M · rgb + b``, ``M = I + ΔM``; the last layer starts at zero, so an untrained (or
fine-tuned-from) model starts at the identity and renders exactly as without it.

The Gaussians' colours are thus a rig-neutral scene colour and each context camera's matrix maps
them into that camera. A camera that was not among the context views (a novel viewpoint, e.g. the
synthetic clips' held-out target cameras, or any camera a user renders the exported scene from)
gets the identity: its exposure is unknown, and the identity is what every renderer and viewer of
the exported Gaussians shows, so what is scored is what users get.

Without a learned head, :func:`fit_colour` gives the same matrices at inference in closed form
(``model.colour_fit``): per context camera and colour channel, the gain and offset that take the
Gaussians' renders of that camera's context views to its images in the least-squares sense, the
way a camera's exposure and white balance act (a gain per channel; the offset takes up a black
level). A full 3×4 fit was measured too (docs/benchmarks.md, "Each camera's exposure, fitted").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from splatnet.cameras import Cameras
from splatnet.errors import ValidationError
from splatnet.losses import apply_colour  # noqa: F401 - the colour transform, used with these

#: Image statistics per view the camera summary carries (per-channel mean and std).
_STATS = 6


@dataclass
class ColourAffine:
    """The per-camera colour matrices of a batch of scenes (``SplatNetOutput.colour``).

    Attributes:
        names: the K context camera names (a rig camera's name is the same at every frame).
        matrices: ``[B, K, 3, 4]`` ``[M | b]`` per scene and camera.
    """

    names: list[str]
    matrices: Tensor

    def for_cameras(self, cameras: Cameras) -> Tensor:
        """``[B, C, 3, 4]`` matrices of ``cameras`` (batch ``[B]``, C cameras): the context
        camera of the same name, the identity for a camera that is not one of them."""
        b = self.matrices.shape[0]
        eye = torch.eye(3, 4, dtype=self.matrices.dtype, device=self.matrices.device)
        names = cameras.names or [None] * cameras.num_cameras
        index = {n: k for k, n in enumerate(self.names)}
        rows = [self.matrices[:, index[n]] if n in index else eye.expand(b, 3, 4) for n in names]
        return torch.stack(rows, dim=1)

    def to(self, dtype: torch.dtype) -> ColourAffine:
        return ColourAffine(self.names, self.matrices.to(dtype))


class CameraColour(nn.Module):
    """Per-camera summary → ``[M | b]`` (see the module docstring)."""

    def __init__(self, context_dim: int, hidden_dim: int = 32) -> None:
        super().__init__()
        din = 2 * (context_dim + _STATS)
        self.mlp = nn.Sequential(nn.Linear(din, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, 12))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, context: Tensor, images: Tensor, cameras: Cameras) -> ColourAffine:
        """``context [B, V, C, h, w]`` features, ``images [B, V, 3, H, W]``, the V context
        cameras (``names`` say which views are the same camera; without names every view is its
        own camera) → :class:`ColourAffine` of the distinct cameras."""
        b, v = images.shape[:2]
        img = images.float()
        stats = torch.cat([img.mean(dim=(3, 4)), img.std(dim=(3, 4))], dim=2)  # [B, V, 6]
        view = torch.cat([context.float().mean(dim=(3, 4)), stats], dim=2)  # [B, V, C + 6]
        names = list(cameras.names) if cameras.names is not None else [f"view{i}" for i in range(v)]
        distinct = list(dict.fromkeys(names))
        member = torch.zeros(len(distinct), v, dtype=view.dtype, device=view.device)
        for i, n in enumerate(names):
            member[distinct.index(n), i] = 1.0
        member = member / member.sum(dim=1, keepdim=True)
        per_cam = torch.einsum("kv,bvc->bkc", member, view)  # [B, K, C + 6]
        rig = view.mean(dim=1, keepdim=True).expand_as(per_cam)
        delta = self.mlp(torch.cat([per_cam, rig], dim=2)).reshape(b, len(distinct), 3, 4)
        eye = torch.eye(3, 4, dtype=delta.dtype, device=delta.device)
        return ColourAffine(distinct, eye + delta)


def fit_colour(renders: Tensor, images: Tensor, names: list[str], valid: Tensor | None = None,
               prior: float = 0.0) -> ColourAffine:
    """Per camera and channel, the gain and offset that best take renders to images.

    Args:
        renders: ``[V, H, W, 3]`` the reconstruction rendered into V context views (sky
            composited, as it is shown).
        images: ``[V, H, W, 3]`` those views' images.
        names: V camera names (the same name at several frames is one camera, one fit).
        valid: optional ``[V, H, W]`` bool, the pixels that count (e.g. not the ego's own body).
        prior: weight of the identity (gain 1, offset 0), relative to the mean over the
            camera's pixels: per channel ``(g, b)`` minimises
            ``mean((g · x + b − y)²) + prior · ((g − 1)² + b²)`` (0: plain least squares).

    Returns:
        :class:`ColourAffine` of the distinct names (batch of one): ``[M | b]`` with ``M``
        diagonal (float64 solve). A camera without valid pixels keeps the identity, and so does
        a channel whose render is constant there when ``prior`` is 0.
    """
    v = renders.shape[0]
    if tuple(renders.shape) != tuple(images.shape) or renders.dim() != 4 or renders.shape[-1] != 3:
        raise ValidationError(f"renders {tuple(renders.shape)} and images {tuple(images.shape)}: "
                              f"expected the same [V, H, W, 3]")
    if len(names) != v:
        raise ValidationError(f"names: expected {v} (one per view), got {len(names)}")
    if isinstance(prior, bool) or not isinstance(prior, (int, float)) or not 0 <= prior < float("inf"):
        raise ValidationError(f"prior: expected a finite number >= 0, got {prior!r}")
    distinct = list(dict.fromkeys(names))
    mats = torch.eye(3, 4, dtype=torch.float64).repeat(len(distinct), 1, 1)
    x_all = renders.detach().to("cpu", torch.float64).reshape(v, -1, 3)
    y_all = images.detach().to("cpu", torch.float64).reshape(v, -1, 3)
    w_all = (torch.ones(v, x_all.shape[1], dtype=torch.float64) if valid is None
             else valid.detach().to("cpu").reshape(v, -1).to(torch.float64))
    for k, name in enumerate(distinct):
        rows = [i for i, n in enumerate(names) if n == name]
        x, y, w = x_all[rows].reshape(-1, 3), y_all[rows].reshape(-1, 3), w_all[rows].reshape(-1, 1)
        total = float(w.sum())
        if total < 2:
            continue
        # Normal equations of the weighted fit per channel, as means over the valid pixels.
        sxx, sx = (w * x * x).sum(0) / total, (w * x).sum(0) / total
        sxy, sy = (w * x * y).sum(0) / total, (w * y).sum(0) / total
        for ch in range(3):
            if prior == 0 and float(sxx[ch] - sx[ch] ** 2) <= 1e-10:
                continue  # constant render: no gain to fit
            a = torch.tensor([[sxx[ch] + prior, sx[ch]], [sx[ch], 1.0 + prior]], dtype=torch.float64)
            rhs = torch.stack([sxy[ch] + prior, sy[ch]])
            gain, offset = torch.linalg.solve(a, rhs)
            mats[k, ch, ch] = gain
            mats[k, ch, 3] = offset
    return ColourAffine(distinct, mats[None].to(torch.float32))
