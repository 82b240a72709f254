"""A quick overfit check: SplatNet learns one small scene (target-view PSNR rises).

The scene is made from tensors: coloured Gaussians in front of a 2-camera rig over 3 frames,
rendered with splatnet.render. Context = all views but one; the held-out view is the target.
"""

from __future__ import annotations

import math

import pytest
import torch

from splatnet import Cameras, Gaussians
from splatnet.losses import lidar_depth_loss, psnr, render_and_compare
from splatnet.models import SplatNet, SplatNetConfig
from splatnet.rendering import render


def forward_rig(height: int, width: int, cameras: int = 2, frames: int = 3) -> Cameras:
    K, poses, ts, names = [], [], [], []
    for t in range(frames):
        for c in range(cameras):
            yaw = math.radians(25.0 * (c - (cameras - 1) / 2))
            pose = torch.eye(4)
            pose[:3, :3] = torch.tensor([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0],
                                         [-math.sin(yaw), 0, math.cos(yaw)]])
            pose[:3, 3] = torch.tensor([0.4 * c, 0.0, 0.8 * t])
            poses.append(pose)
            K.append(torch.tensor([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2],
                                   [0, 0, 1.0]]))
            ts.append(0.1 * t)
            names.append(f"cam{c}")
    return Cameras(torch.stack(K)[None], torch.stack(poses)[None], width, height,
                   timestamps=torch.tensor(ts, dtype=torch.float64)[None], names=names)


def scene(n: int = 300, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    z = 5.0 + 15.0 * torch.rand(n, generator=g)
    xy = (torch.rand(n, 2, generator=g) - 0.5) * z[:, None] * 1.4
    means = torch.cat([xy, z[:, None]], dim=-1)
    sh = (torch.rand(n, 1, 3, generator=g) - 0.5) / 0.28209479177387814
    return Gaussians(means[None], torch.tensor([1.0, 0, 0, 0]).expand(1, n, 4),
                     (0.08 * z)[None, :, None].expand(1, n, 3).clone(),
                     torch.full((1, n), 0.95), sh[None])


@pytest.mark.slow
def test_overfit_one_scene_psnr_rises():
    torch.manual_seed(0)
    height, width = 32, 48
    cams = forward_rig(height, width)
    gt = scene()
    bg = torch.full((3,), 0.5)
    with torch.no_grad():
        images = render(gt, cams, background=bg).rgb.movedim(-1, -3).clamp(0, 1)
    target = [cams.num_cameras - 1]
    context = list(range(cams.num_cameras - 1))
    lidar = [gt.means[0]]
    cfg = SplatNetConfig.from_dict({"sky": {"enabled": False}, "head": {"predict_sky": False},
                                    "near": 1.0, "far": 60.0})
    net = SplatNet(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)

    def step() -> float:
        out = net(images[:, context], cams[context], lidar=lidar)
        res = render_and_compare(out.gaussians, cams[target], images[:, target], background=bg,
                                 return_render=True)
        loss = res.loss + 0.5 * lidar_depth_loss(out.depth, cams[context], lidar)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        return float(psnr(res.rgb.detach().clamp(0, 1), images[:, target]))

    history = [step() for _ in range(40)]
    start, end = sum(history[:3]) / 3, sum(history[-3:]) / 3
    assert end > start + 2.0, history
