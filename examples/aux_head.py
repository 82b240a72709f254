"""Gaussian splatting as an auxiliary task for a driving model, end to end.

A stand-in driving backbone (any CNN over the rig's images) predicts per-view features and
depth logits; :class:`splatnet.GaussianHead` turns them into 3D Gaussians; the
render-and-compare loss on held-out views supervises the backbone through the differentiable
renderer. Run it::

    python examples/aux_head.py --steps 3

The toy scene is made here from tensors: random coloured Gaussians in front of a 3-camera rig
over 2 frames, rendered with ``splatnet.render`` to give the "camera images".
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from splatnet import Cameras, GaussianHead, Gaussians  # noqa: E402
from splatnet.losses import render_and_compare  # noqa: E402
from splatnet.models.cost_volume import inverse_depth_candidates  # noqa: E402
from splatnet.rendering import render  # noqa: E402


class DrivingBackbone(nn.Module):
    """Stand-in for a driving model's image backbone: features and depth logits at 1/4."""

    def __init__(self, feature_dim: int = 32, num_depths: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        )
        self.features = nn.Conv2d(64, feature_dim, 1)
        self.depth = nn.Conv2d(64, num_depths, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, v = images.shape[:2]
        x = self.net(images.flatten(0, 1))
        feats = self.features(x)
        logits = self.depth(x)
        return feats.unflatten(0, (b, v)), logits.unflatten(0, (b, v))


def toy_rig(height: int, width: int, cameras: int = 3, frames: int = 2) -> Cameras:
    """Forward-facing cameras 30° apart on a car moving 1 m per frame along +z (OpenCV axes)."""
    K, poses, ts, names = [], [], [], []
    for t in range(frames):
        for c in range(cameras):
            yaw = math.radians(30.0 * (c - (cameras - 1) / 2))
            pose = torch.eye(4)
            pose[:3, :3] = torch.tensor([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0],
                                         [-math.sin(yaw), 0, math.cos(yaw)]])
            pose[:3, 3] = torch.tensor([0.3 * (c - 1), 0.0, 1.0 * t])
            poses.append(pose)
            K.append(torch.tensor([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2],
                                   [0, 0, 1.0]]))
            ts.append(0.1 * t)
            names.append(f"cam{c}")
    return Cameras(torch.stack(K)[None], torch.stack(poses)[None], width, height,
                   timestamps=torch.tensor(ts, dtype=torch.float64)[None], names=names)


def toy_scene(n: int = 400, seed: int = 0) -> Gaussians:
    """Random opaque Gaussians 4–20 m ahead of the rig (batch [1])."""
    g = torch.Generator().manual_seed(seed)
    z = 4.0 + 16.0 * torch.rand(n, generator=g)
    xy = (torch.rand(n, 2, generator=g) - 0.5) * z[:, None] * 1.6
    means = torch.cat([xy, z[:, None]], dim=-1)
    sh = (torch.rand(n, 1, 3, generator=g) - 0.5) / 0.28209479177387814
    return Gaussians(means[None], torch.tensor([1.0, 0, 0, 0]).expand(1, n, 4),
                     (0.05 * z)[None, :, None].expand(1, n, 3).clone(),
                     torch.full((1, n), 0.9), sh[None])


def main(steps: int = 1, height: int = 48, width: int = 80, seed: int = 0,
         verbose: bool = True) -> list[float]:
    """Train the backbone + head for ``steps`` optimiser steps; returns the loss per step."""
    torch.manual_seed(seed)
    cams = toy_rig(height, width)
    with torch.no_grad():
        images = render(toy_scene(seed=seed), cams, background=torch.full((3,), 0.5)).rgb
        images = images.movedim(-1, -3).clamp(0, 1)  # [1, V, 3, H, W]
    held_out = [cams.num_cameras - 1]  # the last camera at the last frame
    context = [i for i in range(cams.num_cameras) if i not in held_out]

    backbone = DrivingBackbone()
    head = GaussianHead(32, sh_degree=1, near=1.0, far=60.0, predict_sky=False)
    depths = inverse_depth_candidates(1.0, 60.0, 16)
    opt = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-3)

    losses = []
    for step in range(steps):
        feats, logits = backbone(images[:, context])
        out = head(feats, cams[context], depth_logits=logits, candidate_depths=depths,
                   images=images[:, context])
        loss = render_and_compare(out.gaussians, cams[held_out], images[:, held_out],
                                  background=torch.full((3,), 0.5))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if verbose:
            print(f"step {step}: render-and-compare loss on held-out views {losses[-1]:.4f} "
                  f"({out.gaussians.num_gaussians} Gaussians)")
    return losses


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--height", type=int, default=48)
    p.add_argument("--width", type=int, default=80)
    args = p.parse_args()
    main(args.steps, args.height, args.width)
