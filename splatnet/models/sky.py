"""Sky / far field: a small network of the ray direction, conditioned on the scene.

No Gaussian is placed at infinity; instead the renderer's leftover transmittance ``1 − alpha``
is filled with the sky colour of each pixel's ray (STORM's recipe). The head's sky probability
fades Gaussians out where the sky is.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from splatnet.cameras import Cameras
from splatnet.errors import ValidationError
from splatnet.models.geometry import cell_centers, rotate, unproject_dirs


class SkyModel(nn.Module):
    """Scene latent (from pooled context features) + ray direction → RGB in [0, 1]."""

    def __init__(self, context_dim: int, *, hidden_dim: int = 32, latent_dim: int = 16,
                 num_frequencies: int = 3) -> None:
        super().__init__()
        self.num_frequencies = num_frequencies
        self.to_latent = nn.Linear(context_dim, latent_dim)
        din = 3 + 6 * num_frequencies + latent_dim
        self.mlp = nn.Sequential(nn.Linear(din, hidden_dim), nn.ReLU(inplace=True),
                                 nn.Linear(hidden_dim, hidden_dim), nn.ReLU(inplace=True),
                                 nn.Linear(hidden_dim, 3))

    def forward(self, context: Tensor) -> SkyBackground:
        """``context [B, V, C, h, w]`` → the scene's :class:`SkyBackground`."""
        pooled = context.mean(dim=(1, 3, 4))  # [B, C]
        return SkyBackground(self, self.to_latent(pooled))

    def colour(self, latent: Tensor, dirs: Tensor) -> Tensor:
        """``latent [B, L]``, world directions ``dirs [B, ..., 3]`` → RGB ``[B, ..., 3]``."""
        d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        freqs = 2.0 ** torch.arange(self.num_frequencies, device=d.device, dtype=d.dtype) * math.pi
        ang = (d[..., None, :] * freqs[:, None]).flatten(-2)  # [B, ..., 3F]
        x = torch.cat([d, ang.sin(), ang.cos()], dim=-1)
        # The first layer on [x, latent] is W_x · x + (W_lat · latent + b): the latent's part is
        # one vector per scene, added as a bias instead of being copied to every ray.
        first = self.mlp[0]
        nx = x.shape[-1]
        bias = F.linear(latent, first.weight[:, nx:], first.bias)  # [B, hidden]
        bias = bias.reshape(bias.shape[0], *([1] * (d.dim() - 2)), -1)
        h = F.linear(x, first.weight[:, :nx]) + bias
        return torch.sigmoid(self.mlp[1:](h))


class SkyBackground:
    """The sky of B scenes: call it on world ray directions, or render it for cameras.

    ``sky(dirs [B, ..., 3]) -> rgb [B, ..., 3]``; ``sky.render(cameras) -> [B, C, H, W, 3]`` is
    the per-pixel background to composite as ``rgb + (1 − alpha) · sky``.
    """

    def __init__(self, model: SkyModel, latent: Tensor) -> None:
        self.model = model
        self.latent = latent  # [B, L]

    def __call__(self, dirs: Tensor) -> Tensor:
        return self.model.colour(self.latent, dirs)

    def render(self, cameras: Cameras, where: Tensor | None = None) -> Tensor:
        """Sky colour of every pixel of ``cameras`` (batch ``[B]``) → ``[B, C, H, W, 3]``.

        ``where``: optional bool ``[B, C, H, W]``; the sky is evaluated only at those pixels and
        is 0 elsewhere (e.g. where the Gaussians leave no transmittance to show it through).
        """
        h, w = cameras.height, cameras.width
        dtype = self.latent.dtype
        if where is None:
            uv = cell_centers(h, w, w, h, device=self.latent.device, dtype=dtype)
            dirs = rotate(cameras.cam_to_world.to(dtype), unproject_dirs(cameras.K.to(dtype), uv))
            return self(dirs)
        b, c = cameras.K.shape[:2]
        if where.shape != (b, c, h, w):
            raise ValidationError(f"where: expected bool {[b, c, h, w]}, got {list(where.shape)}")
        out = torch.zeros(b, c, h, w, 3, device=self.latent.device, dtype=dtype)
        K = cameras.K.to(dtype)
        R = cameras.cam_to_world[..., :3, :3].to(dtype)
        for i in range(b):  # one scene latent per batch entry
            for j in range(c):  # the chosen pixels' rays (pixel centres), turned into the world
                y, x = where[i, j].nonzero().unbind(-1)
                if not len(y):
                    continue
                uv = torch.stack([x, y], dim=-1).to(dtype)[None] + 0.5  # [1, P, 2]
                dirs = unproject_dirs(K[i, j], uv)[0] @ R[i, j].T  # one [P, 3] × [3, 3] product
                out[i, j, y, x] = self.model.colour(self.latent[i : i + 1], dirs[None])[0]
        return out

    def detach(self) -> SkyBackground:
        return SkyBackground(self.model, self.latent.detach())

