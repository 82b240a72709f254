"""Gaussians and Cameras: validation messages, selection, concatenation, transforms."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import random_gaussians, simple_cameras

import splatnet
from splatnet import Cameras, Gaussians, ValidationError
from splatnet.cameras import look_at_pose
from splatnet.gaussians import quat_to_rotmat, rotmat_to_quat
from splatnet.sh import eval_sh


def _fields(n=4, k=1):
    return dict(means=torch.zeros(n, 3), quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                scales=torch.full((n, 3), 0.1), opacities=torch.full((n,), 0.5),
                sh=torch.zeros(n, k, 3))


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("means", torch.zeros(4, 2), "means: expected shape [..., N, 3]"),
        ("quats", torch.zeros(4, 3), "quats: expected shape [..., 4, 4]"),
        ("sh", torch.zeros(4, 5, 3), "sh: 5 SH coefficients per channel is not a degree 0-3 set"),
        ("scales", torch.full((4, 3), -0.1), "scales: 4 Gaussian(s) with a scale <= 0"),
        ("opacities", torch.full((4,), 1.5), "opacities: 4 value(s) outside [0, 1]"),
        ("means", torch.full((4, 3), float("nan")), "means: 12 non-finite value(s)"),
        ("opacities", torch.zeros(4, dtype=torch.long), "opacities: expected a floating-point"),
        ("quats", torch.zeros(4, 4), "quats: zero-length quaternion"),
    ],
)
def test_gaussians_validation_names_field(field, value, message):
    kw = _fields()
    kw[field] = value
    with pytest.raises(ValidationError) as err:
        Gaussians(**kw)
    assert message in str(err.value)


def test_gaussians_velocities_need_times():
    with pytest.raises(ValidationError, match="velocities and times"):
        Gaussians(**_fields(), velocities=torch.zeros(4, 3))


def test_gaussians_batch_mismatch():
    kw = _fields()
    kw["opacities"] = torch.full((2, 4), 0.5)
    with pytest.raises(ValidationError, match="batch"):
        Gaussians(**kw)


def test_selection_concat_and_to():
    g = random_gaussians(10, sh_degree=1)
    mask = torch.arange(10) % 3 == 0
    sel = g[mask]
    assert sel.num_gaussians == 4
    assert torch.equal(sel.means, g.means[mask])
    assert torch.equal(g[torch.tensor([9, 0])].sh, g.sh[[9, 0]])
    both = Gaussians.cat([g, random_gaussians(5, sh_degree=3)])
    assert both.num_gaussians == 15 and both.sh_degree == 3
    assert torch.equal(both.sh[:10, :4], g.sh) and bool((both.sh[:10, 4:] == 0).all())
    assert g.to(torch.float64).dtype == torch.float64
    batched = random_gaussians(6, batch=(2,))
    assert batched.batch_shape == (2,) and batched[torch.tensor([1, 2])].means.shape == (2, 2, 3)


def test_rigid_transform_preserves_rendered_colour_and_shape():
    """A rotated scene seen from the rotated camera looks the same: covariances and SH colours."""
    g = random_gaussians(32, sh_degree=3, dtype=torch.float64)
    angle = 0.7
    axis = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    axis = axis / axis.norm()
    kx = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    r = torch.eye(3, dtype=torch.float64) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx
    t = torch.eye(4, dtype=torch.float64)
    t[:3, :3], t[:3, 3] = r, torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    h = g.transform(t)
    assert torch.allclose(h.means, g.means @ r.T + t[:3, 3], atol=1e-12)
    # Covariance R Σ Rᵀ.
    def cov(x):
        m = quat_to_rotmat(x.quats) * x.scales[..., None, :]
        return m @ m.transpose(-1, -2)
    assert torch.allclose(cov(h), r @ cov(g) @ r.T, atol=1e-10)
    # View-dependent colour: direction d in the old frame is R d in the new one.
    d = torch.randn(32, 3, dtype=torch.float64)
    assert torch.allclose(eval_sh(h.sh, d @ r.T), eval_sh(g.sh, d), atol=1e-10)


def test_transform_rejects_non_rigid():
    with pytest.raises(ValidationError, match="not a rigid transform"):
        random_gaussians(3).transform(torch.eye(4) * 2)


def test_rotmat_quat_round_trip():
    for seed in range(20):
        q = torch.randn(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        q = q / q.norm()
        q = -q if q[0] < 0 else q
        assert torch.allclose(rotmat_to_quat(quat_to_rotmat(q)), q, atol=1e-12)


def test_cameras_validation():
    K = torch.tensor([[[100.0, 0, 32], [0, 100, 24], [0, 0, 1]]])
    pose = torch.eye(4)[None]
    Cameras(K, pose, 64, 48)
    skew = K.clone()
    skew[0, 0, 1] = 3.0
    with pytest.raises(ValidationError, match="K: not a pinhole matrix"):
        Cameras(skew, pose, 64, 48)
    with pytest.raises(ValidationError, match="cam_to_world: not rigid"):
        Cameras(K, pose * 1.5, 64, 48)
    nan_pose = pose.clone()
    nan_pose[0, 0, 3] = float("nan")
    with pytest.raises(ValidationError, match="cam_to_world: 1 non-finite"):
        Cameras(K, nan_pose, 64, 48)
    with pytest.raises(ValidationError, match="width: expected a positive int"):
        Cameras(K, pose, 0, 48)
    with pytest.raises(ValidationError, match=r"K: expected shape \[..., C, 3, 3\]"):
        Cameras(K[0, :2], pose, 64, 48)
    with pytest.raises(ValidationError, match="names: expected 1 names"):
        Cameras(K, pose, 64, 48, names=["a", "b"])


def test_cameras_geometry_helpers():
    cams = simple_cameras(3)
    w2c = cams.world_to_cam
    assert torch.allclose(w2c @ cams.cam_to_world, torch.eye(4).expand(3, 4, 4), atol=1e-5)
    # The camera looks at the origin: it lands on the principal point with positive depth.
    origin_cam = (w2c @ torch.tensor([0.0, 0, 0, 1]))[..., :3]
    uv = (cams.K @ origin_cam[..., None])[..., 0]
    assert torch.allclose(uv[:, :2] / uv[:, 2:], torch.tensor([32.0, 24.0]).expand(3, 2), atol=1e-4)
    half = cams.resized(32, 24)
    assert half.K[0, 0, 0] == cams.K[0, 0, 0] / 2 and half.K[0, 0, 2] == 16
    sub = cams[[2, 0]]
    assert torch.equal(sub.cam_to_world, cams.cam_to_world[[2, 0]])
    assert Cameras.cat([cams, sub]).num_cameras == 5


def test_opengl_conversion_round_trip_and_meaning():
    c2w_cv = look_at_pose((1.0, 2.0, 3.0), (0.0, 0.0, 0.0)).float()
    cams = Cameras(torch.tensor([[50.0, 0, 20], [0, 50, 20], [0, 0, 1]])[None], c2w_cv[None], 40, 40)
    gl = cams.to_opengl()
    # OpenGL looks down −z: the OpenCV +z axis equals the OpenGL −z axis; +y down = −(+y up).
    assert torch.allclose(gl[0, :3, 2], -c2w_cv[:3, 2])
    assert torch.allclose(gl[0, :3, 1], -c2w_cv[:3, 1])
    back = Cameras.from_opengl(cams.K, gl, 40, 40)
    assert torch.allclose(back.cam_to_world, cams.cam_to_world)


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, splatnet; heavy = [m for m in ('open3d', 'kornia', 'gsplat', 'splatnet._C')"
            " if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert splatnet.__version__


def test_look_at_points_the_camera_at_the_target():
    eye = torch.tensor([3.0, -2.0, 1.5], dtype=torch.float64)
    target = torch.tensor([0.5, 1.0, 0.2], dtype=torch.float64)
    pose = look_at_pose(eye, target)
    R = pose[:3, :3]
    torch.testing.assert_close(R.T @ R, torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
    assert torch.det(R) > 0.999
    d = (target - eye).double()
    torch.testing.assert_close(R[:, 2], d / d.norm(), atol=1e-12, rtol=0)  # +z forward
    assert R[2, 1] < 0  # +y down: against world up
    # The target projects to the principal point of cameras built with Cameras.look_at.
    K = torch.tensor([[50.0, 0, 32], [0, 50, 24], [0, 0, 1]])
    cams = Cameras.look_at(torch.stack([eye, eye + 1]), target, K, 64, 48).to(torch.float64)
    for c in range(2):
        p = cams.world_to_cam[c].double() @ torch.cat([target, torch.ones(1, dtype=torch.float64)])
        assert abs(float(p[0] / p[2] * 50 + 32) - 32) < 1e-3
        assert abs(float(p[1] / p[2] * 50 + 24) - 24) < 1e-3
    straight_down = look_at_pose((0.0, 0.0, 10.0), (0.0, 0.0, 0.0))  # up parallel to the view
    assert torch.isfinite(straight_down).all()
