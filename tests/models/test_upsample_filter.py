"""``model.upsample_filter``: the network's Gaussians widened when a render samples the scene more
finely than its input views did. The widening against the formula written out here in numpy, the
dotted texture it is for (one Gaussian per network cell rendered at twice the size), and
``evaluate_clip`` rendering through it (against renders of Gaussians widened here)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import splatnet
from splatnet import Cameras, Gaussians
from splatnet.errors import ValidationError
from splatnet.models.config import SplatNetConfig
from splatnet.models.postprocessing import widen_for_camera


def _camera(f: float, size: tuple[int, int], yaw: float = 0.0) -> Cameras:
    h, w = size
    K = torch.tensor([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    c2w = torch.eye(4)
    c, s = math.cos(yaw), math.sin(yaw)
    c2w[:3, :3] = torch.tensor([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])
    c2w[:3, 3] = torch.tensor([0.3, -0.2, 0.5])
    return Cameras(K[None], c2w[None], w, h)


def _gaussians(n: int = 50, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([2.0, 1.0, 1.0]) + torch.tensor([0, 0, 8.0])
    return Gaussians(means, torch.randn(n, 4, generator=g), torch.rand(n, 3, generator=g) * 0.05 + 0.01,
                     torch.rand(n, generator=g) * 0.8 + 0.1, torch.rand(n, 1, 3, generator=g))


@pytest.mark.parametrize("r", [1.5, 2.0, 4.75])
def test_scales_are_widened_by_the_blur_of_the_formula(r):
    g = _gaussians()
    f_net, sigma = 100.0, 0.23
    cam = _camera(f_net * r, (96, 160), yaw=0.3)
    out = widen_for_camera(g, cam, f_net, sigma)
    c2w = cam.cam_to_world[0].double().numpy()
    z = (g.means.double().numpy() - c2w[:3, 3]) @ c2w[:3, 2]
    blur = sigma * math.sqrt(1 - 1 / r ** 2) * z / f_net  # metres: sigma network px at depth z
    want = np.sqrt(g.scales.double().numpy() ** 2 + blur[:, None] ** 2)
    np.testing.assert_allclose(out.scales.double().numpy(), want, rtol=1e-5)
    for k in ("means", "quats", "opacities", "sh"):
        assert torch.equal(getattr(out, k), getattr(g, k))


def test_at_the_networks_size_or_smaller_nothing_changes():
    g = _gaussians()
    for f in (100.0, 100.005, 60.0):
        assert widen_for_camera(g, _camera(f, (64, 112)), 100.0, 0.23) is g
    assert widen_for_camera(g, _camera(300.0, (64, 112)), 100.0, 0.0) is g
    with pytest.raises(ValidationError, match="one camera"):
        widen_for_camera(g, Cameras.cat([_camera(200.0, (8, 8))] * 2), 100.0, 0.23)
    with pytest.raises(ValidationError, match="network_focal > 0"):
        widen_for_camera(g, _camera(200.0, (8, 8)), 0.0, 0.23)


def test_gradients_reach_the_scales_through_the_widening():
    g = _gaussians()
    scales = g.scales.clone().requires_grad_(True)
    g = Gaussians(g.means, g.quats, scales, g.opacities, g.sh)
    widen_for_camera(g, _camera(250.0, (16, 16)), 100.0, 0.23).scales.sum().backward()
    assert scales.grad is not None and bool((scales.grad > 0).all())


def test_it_fills_the_dotted_texture_of_one_gaussian_per_cell_at_twice_the_size():
    """A wall of one small, opaque Gaussian per 2×2-pixel cell of a 64×64 network view (the
    network's stride), uniformly grey: at the network's size it renders flat; at twice the size
    the gaps between the Gaussians show as a grid of dots, which the filter fills in part (its
    shipped sigma) and more with a larger sigma."""
    f_net, depth, h = 64.0, 10.0, 64
    cell = 2 * depth / f_net  # metres per 2-pixel cell on the wall
    ys, xs = torch.meshgrid(torch.arange(h // 2), torch.arange(h // 2), indexing="ij")
    means = torch.stack([(xs.flatten() - h / 4 + 0.5) * cell, (ys.flatten() - h / 4 + 0.5) * cell,
                         torch.full((xs.numel(),), depth)], -1)
    n = means.shape[0]
    wall = Gaussians(means, torch.tensor([1.0, 0, 0, 0]).expand(n, 4), torch.full((n, 3), 0.3 * cell),
                     torch.full((n,), 0.99), torch.full((n, 1, 3), 0.2))

    def texture(g, size):  # the pixel spread over the wall's middle half
        f = f_net * size / h
        cam = Cameras(torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])[None],
                      torch.eye(4)[None], size, size)
        img = splatnet.render(g, cam, backend="torch").rgb[0, ..., 0]
        return cam, float(img[size // 4:3 * size // 4, size // 4:3 * size // 4].std())

    _, flat = texture(wall, h)
    cam2, dotted = texture(wall, 2 * h)
    _, filled = texture(widen_for_camera(wall, cam2, f_net, 0.23), 2 * h)
    _, more = texture(widen_for_camera(wall, cam2, f_net, 0.6), 2 * h)
    assert dotted > 10 * flat
    assert filled < 0.95 * dotted and more < 0.7 * filled


@pytest.mark.parametrize("field, value, match", [
    ("enabled", "yes", "upsample_filter.enabled: expected true or false"),
    ("sigma", -0.1, r"upsample_filter.sigma: expected network pixels in \[0, 4\]"),
    ("sigma", float("nan"), "upsample_filter.sigma"),
])
def test_bad_config_values_name_the_field(field, value, match):
    with pytest.raises(ValidationError, match=match):
        SplatNetConfig.from_dict({"upsample_filter": {field: value}})
