"""Pieces of the SplatNet training loss checked by hand."""

from __future__ import annotations

import math

import torch

from splatnet.losses import inverse_depth_l1
from splatnet.metrics import psnr


def test_inverse_depth_l1_pools_the_nearest_point_per_cell():
    gt = torch.zeros(1, 1, 1, 4, 4)
    gt[..., 0, 0] = 2.0   # cell (0, 0) sees points at 2 m and 4 m: the nearest (2 m) counts
    gt[..., 1, 1] = 4.0
    gt[..., 3, 3] = 5.0   # cell (1, 1)
    pred = torch.tensor([[4.0, 1.0], [1.0, 10.0]]).reshape(1, 1, 1, 2, 2)
    near = 1.0
    want = (abs(1 / 4 - 1 / 2) + abs(1 / 10 - 1 / 5)) / 2  # cells without LiDAR are ignored
    got = inverse_depth_l1(pred, gt, near)
    assert math.isclose(float(got), want, rel_tol=1e-6)
    # full resolution, no pooling; the near scaling multiplies the loss
    p = torch.full((1, 1, 1, 4, 4), 2.0)
    got = inverse_depth_l1(p, gt, 0.5, pool=False)
    want = 0.5 * (abs(1 / 2 - 1 / 2) + abs(1 / 2 - 1 / 4) + abs(1 / 2 - 1 / 5)) / 3
    assert math.isclose(float(got), want, rel_tol=1e-6)
    assert float(inverse_depth_l1(p, torch.zeros_like(gt), 1.0)) == 0.0  # no LiDAR, no loss


def test_inverse_depth_l1_gradient_reaches_the_prediction():
    gt = torch.full((1, 2, 1, 4, 4), 3.0)
    pred = torch.full((1, 2, 1, 2, 2), 2.0, requires_grad=True)
    inverse_depth_l1(pred, gt, 1.0).backward()
    # d/dz |1/z − 1/3| at z = 2 is −1/z² = −0.25, averaged over 8 cells
    torch.testing.assert_close(pred.grad, torch.full_like(pred, -0.25 / 8))


def test_mean_psnr_by_hand():
    a = torch.zeros(2, 3, 4, 4)
    b = torch.zeros(2, 3, 4, 4)
    b[0] += 0.1   # MSE 0.01 → 20 dB
    b[1] += 0.01  # MSE 1e-4 → 40 dB
    assert math.isclose(float(psnr(a.clamp(0, 1), b).mean()), 30.0, rel_tol=1e-5)
    # predictions clamped to [0, 1] first
    assert math.isclose(float(psnr((a - 5).clamp(0, 1), b).mean()), 30.0, rel_tol=1e-5)
