"""GaussianHead: camera-z placement, depth from logits, activations, errors."""

from __future__ import annotations

import math

import pytest
import torch

from splatnet import Cameras, GaussianHead
from splatnet.errors import ValidationError
from splatnet.sh import SH_C0


def random_rotation(g: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.det(q))


def make_cameras(b: int, v: int, height: int, width: int, seed: int = 0) -> Cameras:
    g = torch.Generator().manual_seed(seed)
    poses = torch.eye(4, dtype=torch.float64).repeat(b, v, 1, 1)
    K = torch.zeros(b, v, 3, 3, dtype=torch.float64)
    for i in range(b):
        for j in range(v):
            poses[i, j, :3, :3] = random_rotation(g)
            poses[i, j, :3, 3] = torch.randn(3, generator=g, dtype=torch.float64) * 5
            f = width * (0.6 + 0.4 * torch.rand((), generator=g, dtype=torch.float64))
            K[i, j] = torch.tensor([[f, 0, width * 0.45], [0, f * 1.1, height * 0.55], [0, 0, 1]])
    ts = torch.arange(v, dtype=torch.float64).repeat(b, 1) * 0.1
    return Cameras(K, poses, width, height, timestamps=ts)


def neutral_head(feature_dim: int, **kw) -> GaussianHead:
    """A float64 head whose depth correction and sub-cell offset outputs are exactly zero."""
    head = GaussianHead(feature_dim, **kw).double()
    with torch.no_grad():
        w = head.out.weight.view(head.out.out_channels, -1)
        w[:3].zero_()  # depth correction (1) and offset (2)
        head.out.bias[:3].zero_()
    return head


def test_camera_z_placement_from_depth():
    b, v, height, width, stride = 2, 3, 24, 40, 4
    h, w = height // stride, width // stride
    cams = make_cameras(b, v, height, width)
    head = neutral_head(5, near=0.5, far=200.0)
    g = torch.Generator().manual_seed(1)
    depth = 1.0 + 50.0 * torch.rand(b, v, 1, h, w, generator=g, dtype=torch.float64)
    feats = torch.randn(b, v, 5, h, w, dtype=torch.float64, generator=g)
    out = head(feats, cams, depth=depth)
    means = out.gaussians.means.reshape(b, v, h, w, 3)
    # Independent check: world → camera with the inverse pose, then z and the projection.
    w2c = torch.linalg.inv(cams.cam_to_world)
    cam = torch.einsum("bvij,bvhwj->bvhwi", w2c[..., :3, :3], means) + w2c[..., None, None, :3, 3]
    torch.testing.assert_close(cam[..., 2], depth[:, :, 0], rtol=1e-9, atol=1e-9)
    u = cams.K[..., 0, 0, None, None] * cam[..., 0] / cam[..., 2] + cams.K[..., 0, 2, None, None]
    vv = cams.K[..., 1, 1, None, None] * cam[..., 1] / cam[..., 2] + cams.K[..., 1, 2, None, None]
    cu = (torch.arange(w, dtype=torch.float64) + 0.5) * stride
    cv = (torch.arange(h, dtype=torch.float64) + 0.5) * stride
    torch.testing.assert_close(u, cu.expand_as(u), rtol=0, atol=1e-8)
    torch.testing.assert_close(vv, cv[:, None].expand_as(vv), rtol=0, atol=1e-8)
    torch.testing.assert_close(out.depth, depth, rtol=1e-12, atol=1e-12)


def test_depth_from_logits_is_expected_inverse_depth():
    b, v, h, w = 1, 2, 4, 6
    cams = make_cameras(b, v, h * 2, w * 2, seed=3)
    head = neutral_head(3, near=1.0, far=100.0)
    cand = torch.tensor([2.0, 5.0, 10.0, 40.0], dtype=torch.float64)
    logits = torch.full((b, v, 4, h, w), -1e4, dtype=torch.float64)
    logits[:, :, 2] = 0.0  # one-hot on 10 m
    logits[:, 1, :, 0, 0] = 0.0  # uniform in one cell: z = 1 / mean(1 / cand)
    feats = torch.zeros(b, v, 3, h, w, dtype=torch.float64)
    out = head(feats, cams, depth_logits=logits, candidate_depths=cand)
    expect = torch.full((b, v, h, w), 10.0, dtype=torch.float64)
    expect[:, 1, 0, 0] = 1.0 / (1.0 / cand).mean()
    torch.testing.assert_close(out.depth[:, :, 0], expect)
    assert float(out.confidence[0, 0].min()) == pytest.approx(1.0)
    assert float(out.confidence[0, 1, 0, 0, 0]) == pytest.approx(0.25)
    w2c = torch.linalg.inv(cams.cam_to_world)
    means = out.gaussians.means.reshape(b, v, h, w, 3)
    cam_z = torch.einsum("bvj,bvhwj->bvhw", w2c[..., 2, :3], means) + w2c[..., 2, 3, None, None]
    torch.testing.assert_close(cam_z, expect)


def test_activations_and_colour_init():
    b, v, h, w = 1, 2, 3, 5
    cams = make_cameras(b, v, h * 2, w * 2, seed=4)
    head = GaussianHead(4, sh_degree=2, scale_range=(0.1, 3.0), predict_sky=True).double()
    with torch.no_grad():
        head.out.weight.zero_()  # outputs = biases: identity rotation, pixel colour, init scale
    images = torch.rand(b, v, 3, h * 2, w * 2, dtype=torch.float64)
    depth = torch.full((b, v, 1, h, w), 8.0, dtype=torch.float64)
    out = head(torch.randn(b, v, 4, h, w, dtype=torch.float64), cams, depth=depth, images=images)
    gs = out.gaussians
    assert gs.sh.shape == (b, v * h * w, 9, 3)
    assert gs.quats.shape == (b, v * h * w, 4)
    # Colour: DC renders the mean of each 2×2 pixel block; higher bands start at zero.
    block = images.reshape(b, v, 3, h, 2, w, 2).mean(dim=(4, 6))  # [B, V, 3, h, w]
    dc = gs.sh[:, :, 0].reshape(b, v, h, w, 3).permute(0, 1, 4, 2, 3)
    torch.testing.assert_close(0.5 + SH_C0 * dc, block)
    assert float(gs.sh[:, :, 1:].detach().abs().max()) == 0.0
    # Rotation: the camera's own orientation (local identity).
    from splatnet.gaussians import quat_to_rotmat

    rot = quat_to_rotmat(gs.quats.reshape(b, v, h * w, 4))
    torch.testing.assert_close(rot, cams.cam_to_world[:, :, None, :3, :3].expand_as(rot))
    # Opacity: sigmoid(bias) · (1 − sigmoid(sky bias)).
    expect = torch.sigmoid(torch.tensor(-1.0)) * (1 - torch.sigmoid(torch.tensor(-2.0)))
    torch.testing.assert_close(gs.opacities, torch.full_like(gs.opacities, float(expect)))
    # Scale: stride · z / f · 0.5 (the initial footprint of half a cell).
    f = 0.5 * (cams.K[..., 0, 0] + cams.K[..., 1, 1])
    expect_s = (2 * 8.0 / f)[:, :, None] * 0.5
    torch.testing.assert_close(gs.scales.reshape(b, v, h * w, 3),
                               expect_s[..., None].expand(b, v, h * w, 3), rtol=1e-6, atol=0)


def test_velocity_and_times():
    b, v, h, w = 1, 2, 2, 3
    cams = make_cameras(b, v, h * 4, w * 4, seed=5)
    head = GaussianHead(2, predict_velocity=True, max_velocity=10.0)
    out = head(torch.randn(b, v, 2, h, w), cams.to(torch.float32),
               depth=torch.full((b, v, 1, h, w), 5.0))
    gs = out.gaussians
    assert gs.velocities.shape == (b, v * h * w, 3)
    assert float(gs.velocities.detach().abs().max()) <= 10.0 * math.sqrt(3)
    expect_t = cams.timestamps.float()[:, :, None].expand(b, v, h * w).reshape(b, -1)
    torch.testing.assert_close(gs.times, expect_t)
    no_t = Cameras(cams.K, cams.cam_to_world, cams.width, cams.height)
    with pytest.raises(ValidationError, match="timestamps"):
        head(torch.randn(b, v, 2, h, w), no_t, depth=torch.full((b, v, 1, h, w), 5.0))


def test_head_errors():
    cams = make_cameras(1, 2, 10, 16)
    head = GaussianHead(3)
    depth = torch.ones(1, 2, 1, 3, 4)
    with pytest.raises(ValidationError, match="integer"):
        head(torch.zeros(1, 2, 3, 3, 4), cams, depth=depth)  # 10 is not a multiple of 3
    with pytest.raises(ValidationError, match="channels"):
        head(torch.zeros(1, 2, 5, 5, 8), cams, depth=torch.ones(1, 2, 1, 5, 8))
    with pytest.raises(ValidationError, match="exactly one"):
        head(torch.zeros(1, 2, 3, 5, 8), cams)
    with pytest.raises(ValidationError, match="candidate_depths"):
        head(torch.zeros(1, 2, 3, 5, 8), cams, depth_logits=torch.zeros(1, 2, 4, 5, 8))


def test_geometry_stays_float32_under_bf16_autocast():
    b, v, height, width, stride = 1, 2, 32, 48, 4
    h, w = height // stride, width // stride
    cams = make_cameras(b, v, height, width, seed=7).to(torch.float32)
    # Far from the world origin: bf16 would be off by metres here.
    c2w = cams.cam_to_world.clone()
    c2w[..., :3, 3] += torch.tensor([500.0, -300.0, 20.0])
    cams = Cameras(cams.K, c2w, width, height, timestamps=cams.timestamps)
    head = GaussianHead(4)
    with torch.no_grad():
        w_ = head.out.weight.view(head.out.out_channels, -1)
        w_[:3].zero_()
        head.out.bias[:3].zero_()
    depth = 2.0 + 40.0 * torch.rand(b, v, 1, h, w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(torch.randn(b, v, 4, h, w), cams, depth=depth)
    g = out.gaussians
    assert g.means.dtype == torch.float32
    w2c = torch.linalg.inv(cams.cam_to_world.double())
    means = g.means.double().reshape(b, v, h * w, 3)
    cam_z = (means @ w2c[..., 2, :3, None]).squeeze(-1) + w2c[..., 2, 3, None]
    torch.testing.assert_close(cam_z, depth.double().reshape(b, v, h * w), rtol=1e-5, atol=1e-4)


def test_coarse_features_equal_upsampled_features():
    """Mixing coarse features at their resolution then upsampling equals upsampling first."""
    b, v, h, w, cf, cc = 1, 2, 8, 12, 3, 5
    cams = make_cameras(b, v, h * 2, w * 2, seed=8)
    torch.manual_seed(0)
    full = GaussianHead(cf + cc).double()
    split = GaussianHead(cf, coarse_dim=cc).double()
    state = {k: v_ for k, v_ in full.state_dict().items() if not k.startswith("mix_features")}
    split.load_state_dict(state, strict=False)
    with torch.no_grad():
        split.mix_features.weight.copy_(full.mix_features.weight[:, :cf])
        split.mix_features.bias.copy_(full.mix_features.bias)
        split.mix_coarse.weight.copy_(full.mix_features.weight[:, cf:])
    fine = torch.randn(b, v, cf, h, w, dtype=torch.float64)
    coarse = torch.randn(b, v, cc, h // 2, w // 2, dtype=torch.float64)
    up = torch.nn.functional.interpolate(coarse.flatten(0, 1), size=(h, w), mode="bilinear",
                                         align_corners=False).reshape(b, v, cc, h, w)
    depth = torch.full((b, v, 1, h, w), 7.0, dtype=torch.float64)
    a = full(torch.cat([fine, up], dim=2), cams, depth=depth).gaussians
    s = split(fine, cams, depth=depth, coarse_features=coarse).gaussians
    for name in ("means", "scales", "quats", "opacities", "sh"):
        torch.testing.assert_close(getattr(s, name), getattr(a, name), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValidationError, match="coarse_features"):
        split(fine, cams, depth=depth)
    with pytest.raises(ValidationError, match="coarse_dim=0"):
        full(torch.cat([fine, up], dim=2), cams, depth=depth, coarse_features=coarse)


@pytest.mark.parametrize("kwargs, name", [
    ({"feature_dim": -1}, "feature_dim"),
    ({"feature_dim": 0}, "feature_dim"),
    ({"feature_dim": 2.5}, "feature_dim"),
    ({"feature_dim": True}, "feature_dim"),
    ({"coarse_dim": -1}, "coarse_dim"),
    ({"hidden_dim": 0}, "hidden_dim"),
    ({"hidden_dim": "32"}, "hidden_dim"),
    ({"sh_degree": 1.5}, "sh_degree"),
    ({"sh_degree": 4}, "sh_degree"),
    ({"near": float("nan")}, "near"),
    ({"far": float("inf")}, "far"),
    ({"max_velocity": -1.0}, "max_velocity"),
    ({"max_velocity": float("nan")}, "max_velocity"),
    ({"opacity_bias": float("nan")}, "opacity_bias"),
    ({"scale_range": (3.0, 1.0)}, "scale_range"),
    ({"scale_range": (0.0, 1.0)}, "scale_range"),
    ({"scale_range": (0.1, 1.0, 2.0)}, "scale_range"),
    ({"scale_range": 2.0}, "scale_range"),
    ({"depth_correction": -0.1}, "depth_correction"),
    ({"depth_correction": float("inf")}, "depth_correction"),
    ({"predict_velocity": "no"}, "predict_velocity"),
    ({"predict_sky": 1}, "predict_sky"),
])
def test_constructor_arguments_are_checked(kwargs, name):
    args = {"feature_dim": 8, **kwargs}
    with pytest.raises(ValidationError) as err:
        GaussianHead(args.pop("feature_dim"), **args)
    msg = str(err.value)
    assert msg.startswith(f"GaussianHead: {name}") and len(msg.splitlines()) == 1, msg


def test_constructor_edge_arguments_are_accepted():
    head = GaussianHead(1, coarse_dim=0, hidden_dim=1, sh_degree=0, depth_correction=0.0)
    assert head.mix_features.in_channels == 1 and head.out.in_channels == 1
