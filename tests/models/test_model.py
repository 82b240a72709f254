"""SplatNet: shapes and batching, source selection, plane sweep geometry, gradients, errors."""

from __future__ import annotations

import math

import pytest
import torch

from splatnet import Cameras
from splatnet.errors import ValidationError
from splatnet.losses import lidar_depth_loss, render_and_compare
from splatnet.models import SplatNet, SplatNetConfig
from splatnet.models.cost_volume import inverse_depth_candidates, plane_sweep, select_sources


def surround_rig(b: int, cameras: int, frames: int, height: int, width: int,
                 speed: float = 10.0) -> Cameras:
    """A ring of cameras on a car driving along world +x (z up)."""
    K, poses, ts, names = [], [], [], []
    for t in range(frames):
        for c in range(cameras):
            yaw = 2 * math.pi * c / cameras
            fwd = torch.tensor([math.cos(yaw), math.sin(yaw), 0.0])
            down = torch.tensor([0.0, 0.0, -1.0])
            pose = torch.eye(4)
            pose[:3, :3] = torch.stack([torch.linalg.cross(down, fwd), down, fwd], dim=1)
            pose[:3, 3] = torch.tensor([speed * 0.1 * t, 0.0, 1.5]) + 0.5 * fwd
            poses.append(pose)
            f = 0.6 * width
            K.append(torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]]))
            ts.append(0.1 * t)
            names.append(f"cam{c}")
    return Cameras(torch.stack(K)[None].repeat(b, 1, 1, 1),
                   torch.stack(poses)[None].repeat(b, 1, 1, 1), width, height,
                   timestamps=torch.tensor(ts, dtype=torch.float64)[None].repeat(b, 1),
                   names=names)


@pytest.fixture(scope="module")
def model() -> SplatNet:
    torch.manual_seed(0)
    return SplatNet(SplatNetConfig()).eval()


def test_parameter_budget(model):
    n = sum(p.numel() for p in model.parameters())
    assert 1.3e6 <= n <= 2.5e6, n


@pytest.mark.parametrize("b,cams,frames,height,width", [(2, 3, 2, 32, 64), (1, 2, 3, 48, 40),
                                                        (1, 1, 1, 16, 24)])
def test_shapes_and_batching(model, b, cams, frames, height, width):
    rig = surround_rig(b, cams, frames, height, width)
    v = cams * frames
    images = torch.rand(b, v, 3, height, width)
    with torch.no_grad():
        out = model(images, rig)
    s = model.stride
    h, w = height // s, width // s
    g = out.gaussians
    assert g.batch_shape == (b,)
    assert g.num_gaussians == v * h * w
    assert g.sh.shape == (b, v * h * w, 4, 3)  # SH degree 1
    assert out.depth.shape == (b, v, 1, h, w)
    assert out.opacity.shape == (b, v, 1, h, w)
    assert out.sky_prob.shape == (b, v, 1, h, w)
    d = model.config.cost_volume.num_candidates
    h4, w4 = math.ceil(height / 4), math.ceil(width / 4)
    assert out.depth_logits.shape == (b, v, d, h4, w4)
    assert out.coarse_depth.shape == (b, v, 1, h4, w4)
    g.validate()  # finite, positive scales, opacities in [0, 1]
    near, far = model.config.near, model.config.far
    assert float(out.depth.min()) >= near * (1 - 1e-5) and float(out.depth.max()) <= far * 1.0001
    torch.testing.assert_close(g.quats.norm(dim=-1), torch.ones(b, v * h * w))
    with torch.no_grad():
        sky = out.sky.render(rig)
    assert sky.shape == (b, v, height, width, 3)
    assert float(sky.min()) >= 0 and float(sky.max()) <= 1


def test_batch_elements_are_independent(model):
    rig = surround_rig(2, 3, 2, 32, 48)
    # Different scenes: shift the second one's poses.
    c2w = rig.cam_to_world.clone()
    c2w[1, :, :3, 3] += torch.tensor([3.0, -2.0, 0.5])
    rig = Cameras(rig.K, c2w, rig.width, rig.height, timestamps=rig.timestamps, names=rig.names)
    images = torch.rand(2, 6, 3, 32, 48)
    with torch.no_grad():
        both = model(images, rig)
        second = model(images[1:], Cameras(rig.K[1:], c2w[1:], 48, 32,
                                           timestamps=rig.timestamps[1:], names=rig.names))
    torch.testing.assert_close(both.gaussians.means[1], second.gaussians.means[0],
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(both.depth[1], second.depth[0], rtol=1e-4, atol=1e-4)


def test_stride_divisibility_error(model):
    rig = surround_rig(1, 2, 1, 33, 64)
    with pytest.raises(ValidationError, match="divisible by the Gaussian stride 2"):
        model(torch.rand(1, 2, 3, 33, 64), rig)
    with pytest.raises(ValidationError, match="cameras"):
        model(torch.rand(1, 3, 3, 32, 64), surround_rig(1, 2, 1, 32, 64))


def test_select_sources():
    rig = surround_rig(1, 4, 3, 16, 16)  # views: frame-major, cam0..cam3 per frame
    idx, valid = select_sources(rig, temporal=2, rig=2)
    assert idx.shape == (1, 12, 4)
    # View 4 is cam0 at frame 1: temporal sources are cam0 at frames 0 and 2 (equally near),
    # rig neighbours are cam1 and cam3 at frame 1 (90° away), not cam2 (180°).
    assert set(idx[0, 4, :2].tolist()) == {0, 8}
    assert set(idx[0, 4, 2:].tolist()) == {5, 7}
    assert bool(valid.all())
    # With only one frame there are no temporal sources: two valid slots (the rig neighbours).
    idx1, valid1 = select_sources(rig[[0, 1, 2, 3]], temporal=2, rig=2)
    assert valid1.sum(-1).tolist() == [[2, 2, 2, 2]]
    assert set(idx1[0, 0][valid1[0, 0]].tolist()) == {1, 3}


def test_plane_sweep_finds_the_true_plane():
    """Two parallel cameras 1 m apart; features are an analytic texture on a plane at z*."""
    height, width, h, w = 64, 96, 16, 24
    f = 60.0
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]]).expand(1, 2, 3, 3)
    poses = torch.eye(4).repeat(1, 2, 1, 1)
    poses[0, 1, 0, 3] = 1.0  # source camera 1 m to the right
    cams = Cameras(K.clone(), poses, width, height)
    depths = inverse_depth_candidates(2.0, 50.0, 16)
    z_true = float(depths[5])
    freqs = torch.tensor([[0.21, 0.05], [0.13, -0.17], [0.071, 0.11], [0.29, 0.23]])

    def texture(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # unit-norm per pixel
        th = freqs[:, 0, None, None] * u + freqs[:, 1, None, None] * v
        return torch.cat([th.cos(), th.sin()], dim=0) / 2.0

    u = (torch.arange(w) + 0.5) * (width / w)
    v = (torch.arange(h) + 0.5) * (height / h)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    src = texture(uu, vv)
    # Reference pixel u sees the plane point that the source sees at u − f·b/z.
    ref = texture(uu - f * 1.0 / z_true, vv)
    match = torch.stack([ref, src])[None]  # [1, 2, 8, h, w]
    idx = torch.tensor([[[1], [0]]])
    valid = torch.tensor([[[True], [False]]])
    cost, count = plane_sweep(match, cams, idx, valid, depths)
    best = cost[0, 0].argmax(dim=0)  # [h, w]
    seen = (uu - f / z_true > 4) & (uu - f / float(depths[-1]) < width - 4)
    assert bool((best[seen] == 5).all())
    assert float(count[0, 1].max()) == 0.0  # no valid source for view 1
    assert float(cost[0, 1].abs().max()) == 0.0


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    cfg = SplatNetConfig.from_dict({"head": {"predict_velocity": True}})
    net = SplatNet(cfg)
    rig = surround_rig(1, 2, 2, 32, 48)
    images = torch.rand(1, 4, 3, 32, 48)
    pts = torch.randn(400, 3) * 4 + torch.tensor([0.0, 0.0, 1.5])
    pts = pts + 8 * torch.nn.functional.normalize(pts - torch.tensor([0.0, 0.0, 1.5]), dim=-1)
    out = net(images, rig, lidar=[pts])
    loss = render_and_compare(out.gaussians, rig, images, sky=out.sky)
    loss = loss + lidar_depth_loss(out.depth, rig, [pts]) \
        + lidar_depth_loss(out.coarse_depth, rig, [pts])
    loss.backward()
    missing = [n for n, p in net.named_parameters()
               if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not missing, missing


def test_reconstruct_bounds_output(model):
    rig = surround_rig(1, 2, 2, 32, 48)
    images = torch.rand(1, 4, 3, 32, 48)
    raw = model(images, rig).gaussians
    model.config.postprocess.max_gaussians = 500
    try:
        out = model.reconstruct(images, rig)
    finally:
        model.config.postprocess.max_gaussians = 1_000_000
    assert len(out) == 1 and out[0].batch_shape == ()
    assert out[0].num_gaussians <= 500 < raw.num_gaussians
    assert float(out[0].opacities.min()) >= model.config.postprocess.min_opacity


def test_config_round_trip_and_unknown_keys():
    cfg = SplatNetConfig.from_dict({"near": 0.5, "cost_volume": {"unet_dims": [32, 48, 64]}})
    assert cfg.cost_volume.unet_dims == (32, 48, 64) and cfg.near == 0.5
    assert SplatNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValidationError, match="unknown key"):
        SplatNetConfig.from_dict({"head": {"strid": 2}})
    with pytest.raises(ValidationError, match="stride"):
        SplatNetConfig.from_dict({"head": {"stride": 3}})


def test_encoder_weights_from_local_file(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    a = SplatNet(SplatNetConfig())
    path = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in a.encoder.state_dict().items()}, str(path))
    b = SplatNet(SplatNetConfig.from_dict({"encoder": {"weights": str(path)}}))
    for k, v in a.encoder.state_dict().items():
        torch.testing.assert_close(b.encoder.state_dict()[k], v, rtol=0, atol=0)
    bad = tmp_path / "bad.safetensors"
    save_file({"stem.0.weight": torch.zeros(1)}, str(bad))
    with pytest.raises(ValidationError, match="do not match"):
        SplatNet(SplatNetConfig.from_dict({"encoder": {"weights": str(bad)}}))
    with pytest.raises(FileNotFoundError):
        SplatNet(SplatNetConfig.from_dict({"encoder": {"weights": str(tmp_path / "none.pt")}}))


def test_plane_sweep_with_rotated_source():
    """A textured plane at z* in front of the reference camera; the source camera is rotated
    and translated. Features of both views are computed independently by intersecting each
    cell's ray with the plane, so the cost must peak at z* wherever the source sees it."""
    height, width, h, w = 48, 64, 24, 32
    f = 50.0
    depths = inverse_depth_candidates(2.0, 40.0, 12)
    k_true = 4
    z_true = float(depths[k_true])
    yaw, pitch = math.radians(15.0), math.radians(-5.0)
    ry = torch.tensor([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0],
                       [-math.sin(yaw), 0, math.cos(yaw)]], dtype=torch.float64)
    rx = torch.tensor([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)],
                       [0, math.sin(pitch), math.cos(pitch)]], dtype=torch.float64)
    ref_pose = torch.eye(4, dtype=torch.float64)
    ref_pose[:3, :3] = rx  # the reference camera is rotated too
    src_pose = torch.eye(4, dtype=torch.float64)
    src_pose[:3, :3] = rx @ ry
    src_pose[:3, 3] = torch.tensor([0.8, -0.2, 0.3], dtype=torch.float64)
    K = torch.tensor([[f, 0, width / 2], [0, f * 1.1, height / 2], [0, 0, 1.0]],
                     dtype=torch.float64)
    cams = Cameras(K.expand(1, 2, 3, 3).clone(), torch.stack([ref_pose, src_pose])[None],
                   width, height)
    # The plane: camera-z = z_true in the reference frame, i.e. n·X = d in the world.
    normal = ref_pose[:3, 2]
    offset = float(normal @ ref_pose[:3, 3]) + z_true
    freqs = torch.tensor([[0.9, 0.3], [0.4, -1.1], [1.7, 0.6], [-0.5, 0.8]], dtype=torch.float64)
    e1, e2 = ref_pose[:3, 0], ref_pose[:3, 1]

    def features(pose: torch.Tensor) -> torch.Tensor:
        u = (torch.arange(w, dtype=torch.float64) + 0.5) * (width / w)
        v = (torch.arange(h, dtype=torch.float64) + 0.5) * (height / h)
        vv, uu = torch.meshgrid(v, u, indexing="ij")
        rays = torch.stack([(uu - K[0, 2]) / K[0, 0], (vv - K[1, 2]) / K[1, 1],
                            torch.ones_like(uu)], -1) @ pose[:3, :3].T
        o = pose[:3, 3]
        t = (offset - o @ normal) / (rays @ normal)
        x = o + t[..., None] * rays  # world hit points [h, w, 3]
        a, b = x @ e1, x @ e2
        th = freqs[:, 0, None, None] * a + freqs[:, 1, None, None] * b
        return torch.cat([th.cos(), th.sin()], 0) / 2.0  # [8, h, w], unit norm per cell

    match = torch.stack([features(ref_pose), features(src_pose)])[None].float()
    cams = cams.to(torch.float32)
    idx = torch.tensor([[[1], [0]]])
    valid = torch.tensor([[[True], [True]]])
    cost, count = plane_sweep(match, cams, idx, valid, depths)
    # Where the source sees the plane point (projected independently, with a one-cell margin).
    u = (torch.arange(w, dtype=torch.float64) + 0.5) * (width / w)
    v = (torch.arange(h, dtype=torch.float64) + 0.5) * (height / h)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    p_ref = torch.stack([(uu - K[0, 2]) / K[0, 0], (vv - K[1, 2]) / K[1, 1],
                         torch.ones_like(uu)], -1) * z_true
    world = p_ref @ ref_pose[:3, :3].T + ref_pose[:3, 3]
    p_src = (world - src_pose[:3, 3]) @ src_pose[:3, :3]
    us = K[0, 0] * p_src[..., 0] / p_src[..., 2] + K[0, 2]
    vs = K[1, 1] * p_src[..., 1] / p_src[..., 2] + K[1, 2]
    seen = (us > 2) & (us < width - 2) & (vs > 2) & (vs < height - 2)
    assert int(seen.sum()) > 0.3 * h * w
    best = cost[0, 0].argmax(dim=0)
    frac = float((best[seen] == k_true).float().mean())
    assert frac > 0.97, frac
    assert float(count[0, 0].max()) <= 1.0 + 1e-6


def test_forward_under_bf16_autocast(model):
    rig = surround_rig(1, 3, 2, 32, 48)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(1, 6, 3, 32, 48), rig)
    g = out.gaussians
    assert g.means.dtype == torch.float32 and out.depth.dtype == torch.float32
    g.validate()
    # Centres sit at the predicted camera depth even though the convolutions ran in bf16.
    w2c = rig.world_to_cam.double()
    means = g.means.double().reshape(1, 6, -1, 3)
    cam_z = (means @ w2c[..., 2, :3, None]).squeeze(-1) + w2c[..., 2, 3, None]
    torch.testing.assert_close(cam_z, out.depth.double().reshape(1, 6, -1), rtol=1e-5, atol=1e-4)


def test_legacy_state_dict_upgrade_is_exact():
    """Weights of the earlier head layout (head_context conv, depthwise + pointwise 3×3) load
    into the current layout and compute the same functions."""
    import torch.nn.functional as F

    from splatnet.models.splatnet import upgrade_state_dict

    torch.manual_seed(0)
    net = SplatNet(SplatNetConfig())
    state = net.state_dict()
    hidden, cu = net.head.mix_coarse.weight.shape[:2]
    cs = net.head.mix_features.weight.shape[1]
    k = 32
    legacy = {n: t for n, t in state.items()
              if not n.startswith(("head.mix_coarse", "head.net.2", "head.mix_features"))}
    legacy["head_context.weight"] = torch.randn(k, cu, 1, 1)
    legacy["head_context.bias"] = torch.randn(k)
    legacy["head.mix_features.weight"] = torch.randn(hidden, k + cs, 1, 1)
    legacy["head.mix_features.bias"] = torch.randn(hidden)
    legacy["head.net.2.weight"] = torch.randn(hidden, 1, 3, 3)
    legacy["head.net.2.bias"] = torch.randn(hidden)
    legacy["head.net.3.weight"] = torch.randn(hidden, hidden, 1, 1)
    legacy["head.net.3.bias"] = torch.randn(hidden)
    new = upgrade_state_dict(legacy)
    net.load_state_dict(legacy, strict=True)  # the pre-hook upgrades plain loads too
    for name, t in new.items():
        torch.testing.assert_close(net.state_dict()[name], t)
    x = torch.randn(2, hidden, 9, 11, dtype=torch.float64)
    d = {n: t.double() for n, t in legacy.items() if n.startswith("head")}
    old = F.conv2d(F.conv2d(x, d["head.net.2.weight"], d["head.net.2.bias"], padding=1,
                            groups=hidden), d["head.net.3.weight"], d["head.net.3.bias"])
    cur = F.conv2d(x, new["head.net.2.weight"].double(), new["head.net.2.bias"].double(),
                   padding=1)
    torch.testing.assert_close(cur, old, rtol=1e-5, atol=1e-5)  # weights folded in float32
    ctx = torch.randn(2, cu, 5, 6, dtype=torch.float64)
    fine = torch.randn(2, cs, 10, 12, dtype=torch.float64)

    def up(t):
        return F.interpolate(t, size=(10, 12), mode="bilinear", align_corners=False)

    hc = F.conv2d(ctx, legacy["head_context.weight"].double(), legacy["head_context.bias"].double())
    old = F.conv2d(torch.cat([up(hc), fine], 1), d["head.mix_features.weight"],
                   d["head.mix_features.bias"])
    cur = up(F.conv2d(ctx, new["head.mix_coarse.weight"].double())) + F.conv2d(
        fine, new["head.mix_features.weight"].double(), new["head.mix_features.bias"].double())
    torch.testing.assert_close(cur, old, rtol=1e-5, atol=1e-5)


def test_invalid_pixels_switch_their_gaussians_off(model):
    """``valid`` (a clip's camera masks): a cell less than half valid gets opacity 0; every other
    output is what the network gives without a mask."""
    rig = surround_rig(1, 2, 2, 32, 48)
    torch.manual_seed(3)
    images = torch.rand(1, 4, 3, 32, 48)
    valid = torch.ones(1, 4, 1, 32, 48, dtype=torch.bool)
    valid[0, 1, 0, 24:] = False                 # a hood: the bottom quarter of view 1
    valid[0, 2, 0, 0, 0] = False                # one pixel of a 2x2 cell: the cell stays
    valid[0, 3, 0, 0:2, 2:4] = False            # a whole cell
    valid[0, 3, 0, 4, 4:6] = False              # half of one: stays (at least half valid)
    with torch.no_grad():
        ref = model(images, rig)
        out = model(images, rig, valid=valid)
    s = model.stride
    keep = torch.ones(1, 4, 1, 32 // s, 48 // s)
    keep[0, 1, 0, 24 // s:] = 0
    keep[0, 3, 0, 0, 1] = 0
    torch.testing.assert_close(out.opacity, ref.opacity * keep, rtol=0, atol=0)
    torch.testing.assert_close(out.gaussians.opacities, ref.gaussians.opacities * keep.reshape(1, -1),
                               rtol=0, atol=0)
    torch.testing.assert_close(out.gaussians.means, ref.gaussians.means, rtol=0, atol=0)
    assert int((out.gaussians.opacities == 0).sum()) == int((keep == 0).sum()) > 0
    kept = model.reconstruct(images, rig, valid=valid)[0]
    assert kept.num_gaussians < model.reconstruct(images, rig)[0].num_gaussians
    with pytest.raises(ValidationError, match=r"valid: expected \[1, 4, 1, 32, 48\]"):
        model(images, rig, valid=valid[..., :16])
