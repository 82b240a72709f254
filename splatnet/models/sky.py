"""Sky / far field: a small network of the ray direction, conditioned on the scene.

No Gaussian is placed at infinity; instead the renderer's leftover transmittance ``1 − alpha``
is filled with the sky colour of each pixel's ray (STORM's recipe). The head's sky probability
fades Gaussians out where the sky is.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from splatnet.cameras import Cameras
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
        lat = latent.reshape(latent.shape[0], *([1] * (d.dim() - 2)), -1)
        lat = lat.expand(*d.shape[:-1], lat.shape[-1])
        x = torch.cat([d, ang.sin(), ang.cos(), lat], dim=-1)
        return torch.sigmoid(self.mlp(x))


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

    def render(self, cameras: Cameras) -> Tensor:
        """Sky colour of every pixel of ``cameras`` (batch ``[B]``) → ``[B, C, H, W, 3]``."""
        h, w = cameras.height, cameras.width
        dtype = self.latent.dtype
        uv = cell_centers(h, w, w, h, device=self.latent.device, dtype=dtype)
        dirs = rotate(cameras.cam_to_world.to(dtype), unproject_dirs(cameras.K.to(dtype), uv))
        return self(dirs)

    def detach(self) -> SkyBackground:
        return SkyBackground(self.model, self.latent.detach())

