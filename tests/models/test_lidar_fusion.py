"""LiDAR depth fusion (splatnet.models.lidar_fusion, SplatNet's ``lidar_fusion`` option)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from splatnet.errors import ValidationError
from splatnet.models import SplatNet, SplatNetConfig
from splatnet.models.config import LidarFusionConfig, VisibilityConfig
from splatnet.models.lidar_fusion import depth_log_ratio, fill_sparse, move_along_rays
from splatnet.train.config import LossConfig, StageConfig
from splatnet.train.data import SplatBatch
from splatnet.train.task import SplatTask
from tests.models.test_model import surround_rig


def _tiny(fusion: bool, power: float = 0.0) -> SplatNetConfig:
    cfg = SplatNetConfig()
    cfg.encoder = dataclasses.replace(cfg.encoder, stem_dim=8, mid_dim=8, low_dim=8, context_dim=8)
    cfg.cost_volume = dataclasses.replace(cfg.cost_volume, num_candidates=8, unet_dims=(8, 8, 8))
    cfg.head = dataclasses.replace(cfg.head, hidden_dim=8)
    cfg.lidar_fusion = LidarFusionConfig(enabled=fusion, confidence_power=power)
    return cfg


def _brute_normalised_conv(values, mask, sigma, i, j):
    """Σ w v / Σ w over measured cells, w = exp(-d² / 2σ²) truncated at the kernel's radius
    (separable: the same box of side 2r + 1), in float64 loops."""
    r = max(1, int(3.0 * sigma + 0.5))
    num = den = 0.0
    h, w = values.shape
    for y in range(h):
        for x in range(w):
            if mask[y, x] and abs(y - i) <= r and abs(x - j) <= r:
                wt = math.exp(-((y - i) ** 2 + (x - j) ** 2) / (2 * sigma ** 2))
                num += wt * float(values[y, x])
                den += wt
    return num / den


def test_fill_sparse_keeps_measurements_and_matches_a_brute_force_normalised_convolution():
    g = torch.Generator().manual_seed(0)
    h, w = 24, 30
    values = torch.rand(1, 1, h, w, generator=g, dtype=torch.float64)
    mask = torch.zeros(1, 1, h, w, dtype=torch.bool)
    mask[0, 0, 8:16, 10:20] = torch.rand(8, 10, generator=g) < 0.3  # points away from borders
    mask[0, 0, 12, 15] = True
    filled, covered = fill_sparse(values, mask, (1.5,))
    assert torch.equal(filled[mask], values[mask])
    # Cells near the points, away from the borders (the kernel's reach stays inside): the
    # normalised convolution computed directly.
    for i, j in [(7, 9), (12, 14), (16, 20), (10, 17)]:
        if not mask[0, 0, i, j]:
            ref = _brute_normalised_conv(values[0, 0], mask[0, 0], 1.5, i, j)
            assert abs(float(filled[0, 0, i, j]) - ref) < 1e-9
    # Five cells from the nearest point is beyond a sigma of 1.5's reach (radius 5): not covered.
    assert not bool(covered[0, 0, 0, 0]) and float(filled[0, 0, 0, 0]) == 0.0
    # A wider scale reaches every cell, finer ones keep theirs.
    filled2, covered2 = fill_sparse(values, mask, (1.5, 50.0))
    assert bool(covered2.all())
    assert torch.equal(filled2[covered], filled[covered])


def test_fill_sparse_reproduces_a_constant_and_a_ramp_between_samples():
    h, w = 16, 20
    mask = torch.zeros(1, 1, h, w, dtype=torch.bool)
    mask[..., ::3, ::3] = True
    const = torch.full((1, 1, h, w), 0.7, dtype=torch.float64)
    filled, covered = fill_sparse(const, mask, (1.0, 4.0))
    assert bool(covered.all())
    assert torch.allclose(filled, const, atol=1e-12)
    # A symmetric kernel on samples symmetric about a cell (every even column): a linear ramp is
    # exact there, away from the borders.
    ramp = torch.arange(w, dtype=torch.float64).expand(1, 1, h, w).contiguous()
    even = torch.zeros(1, 1, h, w, dtype=torch.bool)
    even[..., ::2] = True
    filled, _ = fill_sparse(ramp, even, (1.0,))
    assert abs(float(filled[0, 0, 6, 9]) - 9.0) < 1e-12


def test_depth_log_ratio_takes_the_lidar_depth_and_is_bounded_and_detached():
    depth = torch.full((1, 2, 1, 8, 10), 10.0, requires_grad=True)
    lidar = torch.zeros(1, 2, 1, 8, 10)
    lidar[0, 0, 0, 4, 5] = 20.0
    lidar[0, 0, 0, 1, 1] = 500.0  # 50x: bounded by max_ratio
    r = depth_log_ratio(depth, lidar, (2.0, 20.0), max_ratio=10.0)
    assert not r.requires_grad
    assert abs(float(r[0, 0, 0, 4, 5]) - math.log(2.0)) < 1e-6
    assert abs(float(r[0, 0, 0, 1, 1]) - math.log(10.0)) < 1e-6
    assert float(r.abs().max()) <= math.log(10.0) + 1e-6
    assert torch.equal(r[0, 1], torch.zeros_like(r[0, 1]))  # a view without points: unchanged


def test_move_along_rays_keeps_each_gaussian_on_its_ray_and_its_footprint():
    from conftest import random_gaussians

    b, v, h, w = 1, 2, 3, 4
    g = random_gaussians(v * h * w, seed=3, batch=(1,))
    centers = torch.tensor([[[0.0, 0.0, 1.5], [1.0, -2.0, 1.0]]])
    log_ratio = torch.randn(b, v, 1, h, w, generator=torch.Generator().manual_seed(1)) * 0.5
    out = move_along_rays(g, centers, log_ratio)
    f = torch.exp(log_ratio).reshape(v, h * w, 1)
    c = centers[0][:, None, :]
    before = g.means[0].reshape(v, h * w, 3) - c
    after = out.means[0].reshape(v, h * w, 3) - c
    assert torch.allclose(after, f * before, atol=1e-5)                      # same ray, scaled
    assert torch.allclose(torch.linalg.cross(after, before), torch.zeros_like(after), atol=1e-4)
    # Footprint seen from the camera (scale / distance) is unchanged.
    ratio_before = g.scales[0].reshape(v, h * w, 3) / before.norm(dim=-1, keepdim=True)
    ratio_after = out.scales[0].reshape(v, h * w, 3) / after.norm(dim=-1, keepdim=True)
    assert torch.allclose(ratio_before, ratio_after, rtol=1e-5)
    for name in ("quats", "opacities", "sh"):
        if name in g.fields():
            assert torch.equal(getattr(out, name), getattr(g, name)), name


def _points_in_front(rig, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c2w = rig.cam_to_world[0, 0]
    z = 4.0 + 20.0 * torch.rand(n, generator=g)
    x = (torch.rand(n, generator=g) - 0.5) * z * 1.2
    y = (torch.rand(n, generator=g) - 0.5) * z * 0.6
    cam = torch.stack([x, y, z], dim=1)
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


def test_splatnet_with_fusion_puts_lidar_cells_at_the_lidar_depth():
    torch.manual_seed(0)
    plain = SplatNet(_tiny(False)).eval()
    fused = SplatNet(_tiny(True)).eval()
    fused.load_state_dict(plain.state_dict())
    rig = surround_rig(1, 3, 2, 32, 48)
    images = torch.rand(1, 6, 3, 32, 48, generator=torch.Generator().manual_seed(2))
    pts = _points_in_front(rig, 300, seed=4)
    with torch.no_grad():
        a = plain(images, rig, [pts])
        b = fused(images, rig, [pts])
        a0 = plain(images, rig, None)
        c = fused(images, rig, None)
    assert a.network_depth is None and c.network_depth is None
    assert torch.equal(b.network_depth, a.depth)
    # Without LiDAR the option changes nothing, bit for bit.
    for name, value in a0.gaussians.fields().items():
        assert torch.equal(value, c.gaussians.fields()[name]), name
    # Independent projection of the points into view 0's 16 x 24 grid: nearest camera z per cell.
    K, c2w = rig.K[0, 0].double(), rig.cam_to_world[0, 0].double()
    cam = (pts.double() - c2w[:3, 3]) @ c2w[:3, :3]
    uv = cam @ K.T
    u, vv, z = uv[:, 0] / uv[:, 2], uv[:, 1] / uv[:, 2], cam[:, 2]
    cells = {}
    for ui, vi, zi in zip(u.tolist(), vv.tolist(), z.tolist()):
        if 0 <= ui < 48 and 0 <= vi < 32 and zi > 1.0:
            key = (int(vi // 2), int(ui // 2))
            cells[key] = min(cells.get(key, math.inf), zi)
    assert len(cells) > 50
    for (i, j), zl in cells.items():
        assert abs(float(b.depth[0, 0, 0, i, j]) - zl) < 1e-3 * zl
    # The Gaussians of those cells sit at that depth along their rays (camera z of the centre).
    means = b.gaussians.means[0, : 16 * 24].double()
    zc = ((means - c2w[:3, 3]) @ c2w[:3, :3])[:, 2].reshape(16, 24)
    za = ((a.gaussians.means[0, : 16 * 24].double() - c2w[:3, 3]) @ c2w[:3, :3])[:, 2].reshape(16, 24)
    for (i, j), zl in list(cells.items())[:20]:
        assert abs(float(zc[i, j] / za[i, j]) - zl / float(a.depth[0, 0, 0, i, j])) < 1e-3


def test_confidence_power_weights_the_log_factor_by_one_minus_confidence():
    torch.manual_seed(0)
    full = SplatNet(_tiny(True, power=0.0)).eval()
    soft = SplatNet(_tiny(True, power=0.5)).eval()
    soft.load_state_dict(full.state_dict())
    rig = surround_rig(1, 3, 2, 32, 48)
    images = torch.rand(1, 6, 3, 32, 48, generator=torch.Generator().manual_seed(2))
    pts = _points_in_front(rig, 300, seed=4)
    with torch.no_grad():
        a, b = full(images, rig, [pts]), soft(images, rig, [pts])
    assert torch.equal(a.network_depth, b.network_depth)
    r_full = torch.log(a.depth / a.network_depth)
    r_soft = torch.log(b.depth / b.network_depth)
    assert float(r_full.abs().max()) > 0.1
    assert torch.allclose(r_soft, r_full * (1 - a.confidence) ** 0.5, atol=1e-5)


def test_training_through_fusion_reaches_the_head_and_depth_loss_reads_the_network_depth():
    torch.manual_seed(0)
    model = SplatNet(_tiny(True))
    model.config.cost_volume.lidar_dropout = 0.0
    model.train()
    rig = surround_rig(1, 3, 2, 32, 48)
    images = torch.rand(1, 6, 3, 32, 48)
    pts = _points_in_front(rig, 300, seed=4)
    depths = torch.full((1, 6, 1, 32, 48), 0.0)
    depths[..., ::4, ::4] = 8.0
    batch = SplatBatch(context_images=images, context_cameras=rig, target_images=images,
                       target_cameras=rig, context_lidar=[pts], context_depths=depths,
                       target_depths=None, target_sky=None, context_sky=None, target_valid=None)
    task = SplatTask(LossConfig(context_weight=0.5, depth_weight=1.0))
    loss, metrics = task.loss(model, batch, 0, StageConfig(until_step=1, size=(32, 48)))
    loss.backward()
    assert model.head.out.weight.grad.abs().sum() > 0
    assert model.depth_net is not None and any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.depth_net.parameters())
    # With every scene's LiDAR dropped, no fusion runs.
    model.config.cost_volume.lidar_dropout = 1.0
    out = model(images, rig, [pts])
    assert out.network_depth is None


@pytest.mark.parametrize("change, field", [
    ({"enabled": 1}, "lidar_fusion.enabled"),
    ({"sigmas": ()}, "lidar_fusion.sigmas"),
    ({"sigmas": (0.5, 0.1)}, "lidar_fusion.sigmas"),
    ({"sigmas": (0.1, float("nan"))}, "lidar_fusion.sigmas"),
    ({"max_ratio": 1.0}, "lidar_fusion.max_ratio"),
    ({"confidence_power": -1.0}, "lidar_fusion.confidence_power"),
])
def test_bad_fusion_config_names_the_field(change, field):
    with pytest.raises(ValidationError, match=field):
        SplatNetConfig(lidar_fusion=LidarFusionConfig(**change))


@pytest.mark.parametrize("field, option", [
    ("lidar_fusion", LidarFusionConfig(enabled=True)),
    ("visibility", VisibilityConfig(enabled=True)),
])
def test_init_accepts_a_model_file_without_a_weightless_option(tmp_path, field, option):
    """LiDAR fusion and cross-view visibility have no weights: ``init=`` from a model file
    without them copies every weight into a config that switches them on."""
    from splatnet.io.checkpoint import init_weights, load_model, save_model

    torch.manual_seed(0)
    plain = SplatNet(_tiny(False))
    save_model(tmp_path / "m.safetensors", plain)
    cfg = _tiny(False)
    setattr(cfg, field, option)
    on = SplatNet(cfg)
    init_weights(on, on.config, tmp_path / "m.safetensors")
    for k, t in plain.state_dict().items():
        assert torch.equal(t, on.state_dict()[k]), k
    assert getattr(load_model(tmp_path / "m.safetensors").config, field).enabled is False
