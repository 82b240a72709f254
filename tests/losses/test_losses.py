"""splatnet.losses against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from splatnet import Cameras, Gaussians
from splatnet.losses import (
    edge_aware_smoothness,
    lidar_depth_loss,
    opacity_loss,
    photometric_loss,
    psnr,
    render_and_compare,
    scale_loss,
    sky_opacity_loss,
    sky_probability_loss,
)
from splatnet.rendering import render


def test_photometric_identical_is_zero():
    x = torch.rand(2, 3, 3, 20, 24)
    assert float(photometric_loss(x, x)) == pytest.approx(0.0, abs=1e-6)


def test_photometric_l1_only():
    a = torch.zeros(1, 3, 4, 5)
    b = torch.zeros(1, 3, 4, 5)
    b[0, 0] = 0.3  # one channel off by 0.3 → per-pixel mean over channels 0.1
    b[0, 1, 0, 0] = -0.6  # one more value: +0.2 at one pixel
    expect = (20 * 0.1 + 0.2) / 20
    assert float(photometric_loss(a, b, ssim_weight=0.0)) == pytest.approx(expect, rel=1e-6)


def test_photometric_constant_images_hand_ssim():
    # Constant images: sigmas vanish, SSIM = (2 μ1 μ2 + C1) / (μ1² + μ2² + C1), C1 = 0.01².
    m1, m2 = 0.3, 0.5
    a = torch.full((1, 3, 16, 16), m1)
    b = torch.full((1, 3, 16, 16), m2)
    c1 = 0.01 ** 2
    ssim = (2 * m1 * m2 + c1) / (m1 ** 2 + m2 ** 2 + c1)
    expect = 0.8 * abs(m1 - m2) + 0.2 * (1 - ssim)
    assert float(photometric_loss(a, b)) == pytest.approx(expect, rel=1e-4)


def test_photometric_mask():
    a = torch.zeros(1, 3, 4, 4)
    b = torch.zeros(1, 3, 4, 4)
    b[..., :2] = 1.0
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 2:] = 1.0  # only the pixels that agree
    assert float(photometric_loss(a, b, mask=mask, ssim_weight=0.0)) == 0.0
    mask[..., 0] = 1.0  # add one wrong column: half of the 8 + 4 pixels... 4 of 12 are wrong
    assert float(photometric_loss(a, b, mask=mask, ssim_weight=0.0)) == pytest.approx(4 / 12)


def test_psnr():
    a = torch.zeros(10)
    b = torch.full((10,), 0.1)
    assert float(psnr(a, b)) == pytest.approx(20.0, rel=1e-5)


def _cams(width=8, height=6, f=4.0) -> Cameras:
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]]).expand(1, 1, 3, 3)
    return Cameras(K.clone(), torch.eye(4).expand(1, 1, 4, 4).clone(), width, height)


def test_lidar_depth_loss_hand():
    cams = _cams()
    # Depth map at half resolution: 3 × 4 cells of 2 × 2 pixels, all predicting 10 m.
    depth = torch.full((1, 1, 1, 3, 4), 10.0, requires_grad=True)
    # Point A on the optical axis at 5 m → pixel (4, 3) → cell (row 1, col 2).
    # Point B at 20 m projecting to pixel (1, 1) → cell (0, 0); a second point behind it at 40 m
    # in the same cell is hidden (nearest wins); point C behind the camera is ignored.
    pts = torch.tensor([[0.0, 0.0, 5.0], [-3 / 4 * 20, -2 / 4 * 20, 20.0],
                        [-3 / 4 * 40, -2 / 4 * 40, 40.0], [0.0, 0.0, -3.0]])
    loss = lidar_depth_loss(depth, cams, [pts])
    value = float(loss.detach())
    expect = (abs(1 / 10 - 1 / 5) + abs(1 / 10 - 1 / 20)) / 2
    assert value == pytest.approx(expect, rel=1e-6)
    loss.backward()
    g = depth.grad[0, 0, 0]
    assert int((g != 0).sum()) == 2 and float(g[1, 2]) != 0 and float(g[0, 0]) != 0
    # No points: zero and still differentiable.
    z = lidar_depth_loss(depth, cams, [None])
    assert float(z.detach()) == 0.0 and z.requires_grad


def test_regularisers_hand():
    assert float(opacity_loss(torch.tensor([0.2, 0.4, 0.9]))) == pytest.approx(0.5)
    scales = torch.tensor([[1.0, 1.0, 1.0], [0.1, 2.0, 0.5], [0.01, 0.5, 0.5]])
    # max axes 1, 2, 0.5; ratios 1, 20, 50.
    expect = (0 + 1.0 + 0) / 3 + (0 + 10 + 40) / 3
    assert float(scale_loss(scales, max_scale=1.0, max_ratio=10.0)) == pytest.approx(expect)
    assert float(scale_loss(scales, max_scale=None, max_ratio=None)) == 0.0


def test_edge_aware_smoothness_hand():
    d = torch.tensor([[1.0, 1.0, 3.0]])[None]  # [1, 1, 3]: mean 5/3
    img = torch.zeros(3, 1, 3)
    img[:, 0, 2] = 0.5  # an edge between columns 1 and 2
    dn = d / (5 / 3)
    expect_x = (0 + abs(dn[0, 0, 2] - dn[0, 0, 1]) * math.exp(-0.5)) / 2
    assert float(edge_aware_smoothness(d, img)) == pytest.approx(float(expect_x), rel=1e-6)
    flat = torch.full((1, 1, 5, 6), 4.0)
    assert float(edge_aware_smoothness(flat, torch.rand(1, 3, 10, 12))) == 0.0


def test_sky_losses_hand():
    alpha = torch.tensor([[0.2, 0.9], [1.0, 0.0]])[..., None]  # [H, W, 1]
    sky = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expect = (0.2 + 0.1 + 0.0 + 0.0) / 4
    assert float(sky_opacity_loss(alpha, sky)) == pytest.approx(expect)
    p = torch.tensor([0.9, 0.2]).reshape(1, 1, 1, 2)
    m = torch.tensor([[1.0, 1.0, 0.0, 0.0]])  # [1, 4] area-averaged to [1, 2]: 1, 0
    expect = -(math.log(0.9) + math.log(0.8)) / 2
    assert float(sky_probability_loss(p, m)) == pytest.approx(expect, rel=1e-5)


def _one_gaussian() -> Gaussians:
    return Gaussians(torch.tensor([[[0.0, 0.0, 4.0]]]), torch.tensor([[[1.0, 0, 0, 0]]]),
                     torch.full((1, 1, 3), 0.5), torch.tensor([[0.8]]),
                     torch.full((1, 1, 1, 3), 0.3))


def test_render_and_compare_matches_a_manual_render():
    cams = _cams(16, 12, 10.0)
    g = _one_gaussian()
    target = torch.rand(1, 1, 3, 12, 16)
    colour = torch.tensor([0.1, 0.6, 0.3])
    # Constant sky composited by render_and_compare vs. the renderer's own background.
    out = render_and_compare(g, cams, target, sky=colour.expand(1, 1, 12, 16, 3),
                             return_render=True)
    manual = render(g, cams, background=colour).rgb.movedim(-1, -3)
    torch.testing.assert_close(out.rgb, manual, rtol=1e-6, atol=1e-6)
    assert float(out.loss) == pytest.approx(float(photometric_loss(manual, target)), rel=1e-6)
    loss = render_and_compare(g, cams, target, background=colour)
    assert float(loss) == pytest.approx(float(out.loss), rel=1e-6)
    with pytest.raises(ValueError, match="images"):
        render_and_compare(g, cams, target[..., :8])
