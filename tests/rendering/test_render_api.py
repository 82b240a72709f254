"""``splatnet.render`` through its public API: shapes, batching, features, dynamic scenes,
background, validation, and the compiled ``cpu`` backend against the ``torch`` reference."""

from __future__ import annotations

import math

import pytest
import torch

import splatnet
from splatnet.cameras import look_at_pose
from splatnet.errors import ValidationError
from splatnet.rendering import RenderOutput, reference, render
from splatnet.rendering.reference import SH_C0

F64 = torch.float64


def _gaussians(n=30, batch=(), seed=0, dtype=F64, sh_degree=1, spread=1.2, dynamic=False,
               check=True):
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    fields = [
        torch.randn(*batch, n, 3, generator=g, dtype=dtype) * spread,
        torch.randn(*batch, n, 4, generator=g, dtype=dtype),
        torch.rand(*batch, n, 3, generator=g, dtype=dtype) * 0.25 + 0.03,
        torch.rand(*batch, n, generator=g, dtype=dtype) * 0.9 + 0.05,
        torch.randn(*batch, n, k, 3, generator=g, dtype=dtype) * 0.4,
    ]
    if dynamic:
        fields += [torch.randn(*batch, n, 3, generator=g, dtype=dtype),
                   torch.rand(*batch, n, generator=g, dtype=dtype)]
    return splatnet.Gaussians(*fields, check=check)


def _cameras(c=2, batch=(), width=24, height=18, radius=5.0, timestamps=None, seed=0):
    poses = []
    for i in range(math.prod(batch) * c):
        a = 2 * math.pi * i / (c + 0.5) + 0.1 * seed
        poses.append(look_at_pose((radius * math.cos(a), radius * math.sin(a), 0.8), (0.0, 0.0, 0.0)))
    poses = torch.stack(poses).reshape(*batch, c, 4, 4)
    f = 0.9 * width
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=F64)
    K = K.expand(*batch, c, 3, 3).clone()
    return splatnet.Cameras(K, poses, width, height, timestamps=timestamps)


def test_output_shapes_and_types():
    g, cams = _gaussians(20), _cameras(3)
    feats = torch.randn(20, 5, dtype=F64)
    out = render(g, cams, features=feats, backend="torch")
    assert isinstance(out, RenderOutput)
    assert out.rgb.shape == (3, 18, 24, 3) and out.alpha.shape == (3, 18, 24, 1)
    assert out.depth.shape == (3, 18, 24, 1) and out.features.shape == (3, 18, 24, 5)
    assert out.radii.shape == (3, 20, 2) and out.radii.dtype == torch.int32
    assert out.means2d.shape == (3, 20, 2) and out.visible.shape == (3, 20)
    assert out.visible.dtype == torch.bool and out.visible.any()
    assert render(g, cams, backend="torch").features is None
    # Top-level export.
    assert splatnet.RenderOutput is RenderOutput


@pytest.mark.parametrize("batch", [(2,), (2, 3)])
def test_batch_dims_equal_separate_renders(batch):
    g = _gaussians(15, batch=batch, seed=1)
    cams = _cameras(2, batch=batch)
    feats = torch.randn(*batch, 15, 3, dtype=F64)
    bg = torch.rand(*batch, 2, 3, dtype=F64)
    out = render(g, cams, features=feats, background=bg, backend="torch")
    assert out.rgb.shape == batch + (2, 18, 24, 3)
    for idx in torch.cartesian_prod(*[torch.arange(b) for b in batch]).reshape(-1, len(batch)):
        idx = tuple(idx.tolist())
        gi = splatnet.Gaussians(*(getattr(g, k)[idx] for k in ("means", "quats", "scales",
                                                                "opacities", "sh")))
        ci = splatnet.Cameras(cams.K[idx], cams.cam_to_world[idx], 24, 18)
        one = render(gi, ci, features=feats[idx], background=bg[idx], backend="torch")
        for name in ("rgb", "alpha", "depth", "features", "radii", "means2d"):
            assert torch.allclose(getattr(out, name)[idx], getattr(one, name)), name


def test_expected_depth_and_background_compositing():
    # One Gaussian straight ahead: depth = its z wherever it is drawn; rgb = c α + (1 − α) bg.
    g = splatnet.Gaussians(torch.tensor([[0.0, 0.0, 4.0]], dtype=F64),
                           torch.tensor([[1.0, 0, 0, 0]], dtype=F64),
                           torch.full((1, 3), 0.3, dtype=F64), torch.tensor([0.6], dtype=F64),
                           torch.tensor([[[0.2, 0.5, -0.4]]], dtype=F64))
    K = torch.tensor([[[20.0, 0, 12], [0, 20, 9], [0, 0, 1]]], dtype=F64)
    cams = splatnet.Cameras(K, torch.eye(4, dtype=F64)[None], 24, 18)
    bg = torch.tensor([0.1, 0.7, 0.3], dtype=F64, requires_grad=True)
    out = render(g, cams, background=bg, backend="torch")
    drawn = out.alpha[..., 0] > 0
    assert drawn.sum() > 20 and not drawn.all()
    assert torch.allclose(out.depth[drawn], torch.full_like(out.depth[drawn], 4.0))
    assert (out.depth[~drawn] == 0).all()
    colour = 0.5 + SH_C0 * torch.tensor([0.2, 0.5, -0.4], dtype=F64)
    want = colour * out.alpha + (1 - out.alpha) * bg
    assert torch.allclose(out.rgb, want, atol=1e-12)
    (grad,) = torch.autograd.grad(out.rgb.sum(), bg)
    assert torch.allclose(grad, (1 - out.alpha).sum().expand(3))


def test_background_per_camera():
    g, cams = _gaussians(10), _cameras(2)
    bg = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]], dtype=F64)
    out = render(g, cams, background=bg, backend="torch")
    plain = render(g, cams, backend="torch")
    for c in range(2):
        assert torch.allclose(out.rgb[c], plain.rgb[c] + (1 - plain.alpha[c]) * bg[c])


@pytest.mark.parametrize("d", [1, 2, 7, 32, 64])
def test_feature_channels(d):
    g, cams = _gaussians(25, seed=2), _cameras(2)
    feats = torch.randn(25, d, dtype=F64, generator=torch.Generator().manual_seed(d))
    out = render(g, cams, features=feats, backend="torch")
    assert out.features.shape == (2, 18, 24, d)
    # Channels are blended independently with the same weights as colour: a feature equal to
    # the degree-0 colour renders the rgb image, a constant feature renders alpha × it.
    dc = g.sh[:, 0, :] * SH_C0 + 0.5
    g0 = splatnet.Gaussians(g.means, g.quats, g.scales, g.opacities, g.sh[:, :1])
    probe = torch.cat([dc, torch.full((25, 1), 2.5, dtype=F64), feats], dim=-1)
    ref_out = render(g0, cams, features=probe, backend="torch")
    assert torch.allclose(ref_out.features[..., :3], ref_out.rgb, atol=1e-12)
    assert torch.allclose(ref_out.features[..., 3:4], 2.5 * ref_out.alpha, atol=1e-12)
    assert torch.allclose(ref_out.features[..., 4:], out.features, atol=1e-12)


def test_zero_gaussians_give_background():
    g = _gaussians(0)
    cams = _cameras(2)
    bg = torch.tensor([0.2, 0.4, 0.6], dtype=F64, requires_grad=True)
    out = render(g, cams, background=bg, features=torch.zeros(0, 3, dtype=F64), backend="torch")
    assert torch.allclose(out.rgb, bg.expand(2, 18, 24, 3))
    assert not out.alpha.any() and not out.depth.any() and not out.features.any()
    assert out.radii.shape == (2, 0, 2) and out.visible.shape == (2, 0)
    out.rgb.sum().backward()
    assert torch.allclose(bg.grad, torch.full((3,), 2.0 * 18 * 24, dtype=F64))


def test_means2d_gradient_is_retained():
    g = _gaussians(20, seed=3)
    for t in (g.means, g.quats, g.scales, g.opacities, g.sh):
        t.requires_grad_()
    out = render(g, _cameras(2), backend="torch")
    (out.rgb.sum() + out.depth.sum()).backward()
    grad = out.means2d.grad
    assert grad is not None and grad.shape == (2, 20, 2)
    assert grad[out.visible].abs().sum() > 0 and not grad[~out.visible].any()
    assert g.means.grad is not None and torch.isfinite(g.means.grad).all()


def test_gradcheck_through_the_api():
    """float64 finite differences of every differentiable input, dynamic scene included."""
    g = _gaussians(4, seed=4, spread=0.5, dynamic=True)
    ts = torch.tensor([0.2, 0.9], dtype=F64)
    cams = _cameras(2, width=12, height=10, radius=3.0, timestamps=ts)
    feats = torch.randn(4, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    bg = torch.tensor([0.3, 0.1, 0.6], dtype=F64)

    def fn(means, quats, scales, opacities, sh, velocities, feats, bg):
        gg = splatnet.Gaussians(means, quats, scales, opacities, sh, velocities, g.times,
                                check=False)
        out = render(gg, cams, features=feats, background=bg, backend="torch")
        return out.rgb, out.alpha, out.depth * out.alpha, out.features

    inputs = [g.means, g.quats, g.scales, g.opacities, g.sh, g.velocities, feats, bg]
    inputs = [t.clone().requires_grad_() for t in inputs]
    assert float(fn(*inputs)[1].detach().max()) > 0.3
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4,
                                      fast_mode=True)


# ----------------------------------------------------------------------------- dynamic scenes
def test_moving_gaussian_renders_where_the_camera_time_puts_it():
    means = torch.tensor([[0.0, 0.0, 5.0]], dtype=F64)
    vel = torch.tensor([[0.8, -0.4, 0.0]], dtype=F64)
    times = torch.tensor([1.0], dtype=F64)
    rest = (torch.tensor([[1.0, 0, 0, 0]], dtype=F64), torch.full((1, 3), 0.2, dtype=F64),
            torch.tensor([0.9], dtype=F64), torch.zeros(1, 1, 3, dtype=F64))
    moving = splatnet.Gaussians(means, *rest, vel, times)
    K = torch.tensor([[20.0, 0, 16], [0, 20, 12], [0, 0, 1]], dtype=F64).expand(3, 3, 3)
    ts = torch.tensor([1.0, 2.0, 0.5], dtype=F64)
    cams = splatnet.Cameras(K.clone(), torch.eye(4, dtype=F64).expand(3, 4, 4).clone(), 32, 24,
                            timestamps=ts)
    out = render(moving, cams, backend="torch")
    for c, t in enumerate(ts.tolist()):
        at = means + vel * (t - 1.0)
        static = splatnet.Gaussians(at, *rest)
        one = render(static, cams[c], backend="torch")
        assert torch.allclose(out.rgb[c], one.rgb[0], atol=1e-12)
        assert torch.allclose(out.means2d[c], one.means2d[0])
        want_px = 20 * at[0, 0] / 5 + 16
        assert float(out.means2d[c, 0, 0]) == pytest.approx(float(want_px))
    # Without camera timestamps the means are seen as stored.
    plain = splatnet.Cameras(K.clone(), torch.eye(4, dtype=F64).expand(3, 4, 4).clone(), 32, 24)
    still = render(moving, plain, backend="torch")
    assert torch.allclose(still.means2d[:, 0], torch.tensor([16.0, 12.0], dtype=F64).expand(3, 2))


def test_dynamic_batched_scene_shapes_and_means2d_grad():
    g = _gaussians(12, batch=(2,), dynamic=True)
    for t in (g.means, g.velocities):
        t.requires_grad_()
    cams = _cameras(3, batch=(2,), timestamps=torch.rand(2, 3, dtype=F64))
    out = render(g, cams, backend="torch")
    assert out.rgb.shape == (2, 3, 18, 24, 3) and out.means2d.shape == (2, 3, 12, 2)
    out.rgb.sum().backward()
    assert out.means2d.grad is not None and out.means2d.grad.shape == (2, 3, 12, 2)
    assert g.velocities.grad is not None and g.velocities.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- validation
def test_validation_errors_name_the_field():
    g, cams = _gaussians(10), _cameras(2)
    bad = _gaussians(10, check=False)
    bad.means[3, 1] = float("nan")
    with pytest.raises(ValidationError, match="means"):
        render(bad, cams, backend="torch")
    bad = _gaussians(10, check=False)
    bad.sh[0, 0, 0] = float("inf")
    with pytest.raises(ValidationError, match="sh"):
        render(bad, cams, backend="torch")
    with pytest.raises(ValidationError, match="features"):
        render(g, cams, features=torch.full((10, 2), float("nan"), dtype=F64), backend="torch")
    with pytest.raises(ValidationError, match="features"):
        render(g, cams, features=torch.zeros(9, 2, dtype=F64), backend="torch")
    with pytest.raises(ValidationError, match="features"):
        render(g, cams, features=torch.zeros(10, dtype=F64), backend="torch")
    with pytest.raises(ValidationError, match="background"):
        render(g, cams, background=torch.zeros(4, dtype=F64), backend="torch")
    with pytest.raises(ValidationError, match="background"):
        render(g, cams, background=torch.tensor([0.0, float("nan"), 0.0], dtype=F64),
               backend="torch")
    with pytest.raises(ValidationError, match="batch"):
        render(_gaussians(10, batch=(2,)), cams, backend="torch")
    with pytest.raises(ValidationError, match="sh_degree"):
        render(g, cams, sh_degree=2, backend="torch")
    with pytest.raises(ValidationError, match="backend"):
        render(g, cams, backend="vulkan")
    with pytest.raises(ValidationError, match="float32"):
        render(g, cams, backend="cpu")
    with pytest.raises(ValidationError, match="CUDA"):
        render(g.to(torch.float32), cams, backend="cuda")
    with pytest.raises(ValidationError, match="CUDA"):
        render(g.to(torch.float32), cams, backend="gsplat")
    with pytest.raises(ValidationError, match="near"):
        render(g, cams, near=1.0, far=0.5, backend="torch")
    with pytest.raises(ValidationError, match="gaussians"):
        render(g.means, cams, backend="torch")
    bad_cams = splatnet.Cameras(cams.K.clone(), cams.cam_to_world.clone(), 24, 18, check=False)
    bad_cams.cam_to_world[0, 0, 3] = float("nan")
    with pytest.raises(ValidationError, match="cam_to_world"):
        render(g, bad_cams, backend="torch")


@pytest.mark.parametrize("field", ["means", "quats", "scales", "opacities", "sh", "velocities",
                                   "times", "features"])
def test_cpu_backend_names_the_non_finite_field(field):
    # The cpu backend leaves the per-Gaussian checks to its C++ ops; the error must still be a
    # ValidationError naming the field the user passed, not the op's argument name.
    g = _gaussians(10, dtype=torch.float32, dynamic=True, check=False)
    cams = _cameras(2, timestamps=torch.tensor([0.0, 0.1], dtype=F64))
    features = torch.zeros(10, 2)
    target = features if field == "features" else getattr(g, field)
    with torch.no_grad():
        target.view(-1)[3] = float("nan")
    with pytest.raises(ValidationError, match=rf"^{field}: 1 non-finite"):
        render(g, cams, features=features, backend="cpu")


def test_sh_degree_limits_the_bands():
    g, cams = _gaussians(20, sh_degree=2), _cameras(2)
    low = splatnet.Gaussians(g.means, g.quats, g.scales, g.opacities, g.sh[:, :4])
    a = render(g, cams, sh_degree=1, backend="torch")
    b = render(low, cams, backend="torch")
    assert torch.allclose(a.rgb, b.rgb)


def test_auto_backend_runs_float64_on_the_reference():
    g, cams = _gaussians(10), _cameras(1)
    assert torch.equal(render(g, cams).rgb, render(g, cams, backend="torch").rgb)


# ----------------------------------------------------------------------------- cpu vs torch
def _cpu_available() -> bool:
    try:
        from splatnet import _ext

        _ext.require_cpu()
        return hasattr(torch.ops.splatnet, "project_forward")
    except Exception:  # noqa: BLE001 - any failure means: not built here
        return False


needs_cpu = pytest.mark.skipif(not _cpu_available(), reason="splatnet._C CPU ops not built")


def _mixed_scene(n=600, batch=(), seed=0, sh_degree=3, dynamic=False):
    """float32 Gaussians that cover the hard cases: overlapping clusters, off-screen, behind the
    cameras, near the near plane, sub-pixel and image-filling ones."""
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.rand(*batch, *s, generator=g)

    means = (r(n, 3) - 0.5) * 6.0  # a cluster around the origin (seen by every camera)
    # 0 plain, 1 far / off-screen, 2 sub-pixel, 3 image-filling, 4 needle, 5 opaque
    weights = torch.tensor([0.55, 0.15, 0.1, 0.02, 0.08, 0.1])
    kind = torch.multinomial(weights, max(1, math.prod(batch) * n), replacement=True, generator=g)
    kind = kind[: math.prod(batch) * n].reshape(*batch, n)
    means = torch.where((kind == 1)[..., None], (r(n, 3) - 0.5) * 30.0, means)  # far / off-screen
    scales = r(n, 3) * 0.12 + 0.01
    scales = torch.where((kind == 2)[..., None], r(n, 3) * 1e-3 + 1e-4, scales)  # sub-pixel
    scales = torch.where((kind == 3)[..., None], r(n, 3) * 1.0 + 0.5, scales)  # image-filling
    aniso = torch.where((kind == 4)[..., None], torch.tensor([3.0, 0.05, 0.3]), torch.ones(3))
    scales = scales * aniso
    opac = r(n) * 0.97 + 0.02
    # Opaque ones packed in a ball: the 0.99 clamp and, behind a few layers, the T < 1e-4 stop.
    opac = torch.where(kind == 5, torch.ones_like(opac), opac)
    means = torch.where((kind == 5)[..., None], (r(n, 3) - 0.5) * 0.8, means)
    scales = torch.where((kind == 5)[..., None], r(n, 3) * 0.2 + 0.1, scales)
    k = (sh_degree + 1) ** 2
    sh = torch.randn(*batch, n, k, 3, generator=g) * 0.3
    sh[..., 0, :] += 0.5
    quats = torch.randn(*batch, n, 4, generator=g)
    extra = []
    if dynamic:
        extra = [torch.randn(*batch, n, 3, generator=g) * 0.5, r(n)]
    return splatnet.Gaussians(means, quats, scales, opac, sh, *extra)


def _rig(c=3, batch=(), width=64, height=48, timestamps=None):
    cams = _cameras(c, batch=batch, width=width, height=height, radius=4.0,
                    timestamps=timestamps)
    # One camera sits inside the cluster: Gaussians behind it, at its centre and near plane.
    m = cams.cam_to_world.clone()
    m[..., 0, :3, 3] = torch.tensor([0.3, -0.2, 0.1], dtype=F64)
    return splatnet.Cameras(cams.K.float(), m.float(), width, height, timestamps=timestamps)


def _grad_inputs(g: splatnet.Gaussians, feats, bg):
    names = ["means", "quats", "scales", "opacities", "sh"]
    if g.is_dynamic:
        names.append("velocities")
    tensors = {k: getattr(g, k).detach().clone().requires_grad_() for k in names}
    tensors["features"] = feats.detach().clone().requires_grad_()
    tensors["background"] = bg.detach().clone().requires_grad_()
    return tensors


def _render_and_grad(g, cams, tensors, backend, dtype, antialiased=False):
    t = {k: v.to(dtype) for k, v in tensors.items()}
    gg = splatnet.Gaussians(t["means"], t["quats"], t["scales"], t["opacities"], t["sh"],
                            t.get("velocities"), None if g.times is None else g.times.to(dtype),
                            check=False)
    out = render(gg, cams.to(dtype), features=t["features"], background=t["background"],
                 antialiased=antialiased, backend=backend)
    gen = torch.Generator().manual_seed(123)
    loss = 0
    for name in ("rgb", "alpha", "depth", "features"):
        x = getattr(out, name)
        loss = loss + (x * torch.randn(x.shape, generator=gen, dtype=F64).to(dtype)).sum()
    loss.backward()
    grads = {k: v.grad.clone() for k, v in tensors.items()}
    grads["means2d"] = out.means2d.grad
    return out, grads


def _compare(g, cams, feats, bg, antialiased=False):
    tensors = _grad_inputs(g, feats, bg)
    cpu, g_cpu = _render_and_grad(g, cams, tensors, "cpu", torch.float32, antialiased)
    for v in tensors.values():
        v.grad = None
    ref, g_ref = _render_and_grad(g, cams, tensors, "torch", F64, antialiased)
    assert torch.equal(cpu.visible, ref.visible)
    assert ref.visible.any() and not ref.visible.all()
    vis = ref.visible
    radii_diff = (cpu.radii[vis] - ref.radii[vis]).abs()
    assert int(radii_diff.max()) <= 1 and float((radii_diff > 0).float().mean()) < 0.01
    m_err = (cpu.means2d[vis].double() - ref.means2d[vis]).abs()
    assert (m_err <= 1e-3 + 1e-5 * ref.means2d[vis].abs()).all(), float(m_err.max())
    for name in ("rgb", "alpha", "depth", "features"):
        a, b = getattr(cpu, name).detach().double(), getattr(ref, name).detach()
        tol = 1e-4 * max(1.0, float(b.abs().max())) if name == "depth" else 1e-4
        err = float((a - b).abs().max().detach())
        assert err <= tol, f"{name}: max abs error {err:.2e}"
    for name, want in g_ref.items():
        got = g_cpu[name].double()
        if name == "means2d":
            got, want = got[vis], want[vis]
        rel = float((got - want).norm() / want.norm().clamp_min(1e-30))
        assert want.norm() > 0, name
        assert rel <= 1e-3, f"grad of {name}: relative error {rel:.2e}"
    return ref


@needs_cpu
@pytest.mark.parametrize("seed", [0, 1])
def test_cpu_matches_torch_mixed_scene(seed, monkeypatch):
    g = _mixed_scene(500, seed=seed)
    cams = _rig(3)
    feats = torch.randn(500, 5, generator=torch.Generator().manual_seed(seed))
    bg = torch.tensor([0.2, 0.5, 0.9])
    ref = _compare(g, cams, feats, bg)
    assert int((ref.alpha < 0.5).sum()) > 1000  # plenty of pixels are partly covered
    # ... and some stop on the T < 1e-4 rule: without it they would change.
    monkeypatch.setattr(reference, "T_MIN", 0.0)
    no_stop = render(g.to(F64), cams.to(F64), features=feats.double(), background=bg.double(),
                     backend="torch")
    assert int((no_stop.rgb - ref.rgb).abs().gt(1e-9).any(-1).sum()) > 20


@needs_cpu
def test_cpu_matches_torch_antialiased_batched_many_features():
    g = _mixed_scene(200, batch=(2,), seed=3, sh_degree=2)
    cams = _rig(2, batch=(2,), width=40, height=36)
    feats = torch.randn(2, 200, 64, generator=torch.Generator().manual_seed(3))
    _compare(g, cams, feats, torch.rand(2, 2, 3), antialiased=True)


@needs_cpu
def test_cpu_matches_torch_dynamic_scene():
    ts = torch.tensor([[0.0, 0.4, 1.1]], dtype=F64)
    g = _mixed_scene(250, batch=(1,), seed=4, sh_degree=1, dynamic=True)
    cams = _rig(3, batch=(1,), width=48, height=32, timestamps=ts)
    feats = torch.randn(1, 250, 1, generator=torch.Generator().manual_seed(4))
    _compare(g, cams, feats, torch.tensor([0.0, 0.0, 0.0]))


@needs_cpu
def test_cpu_zero_gaussians_and_auto_backend():
    cams = _rig(2)
    g = _mixed_scene(0)
    out = render(g, cams, background=torch.tensor([0.1, 0.2, 0.3]), backend="cpu")
    assert torch.allclose(out.rgb, torch.tensor([0.1, 0.2, 0.3]).expand(2, 48, 64, 3))
    g = _mixed_scene(50)
    a = render(g, cams)  # float32 CPU tensors: auto = cpu
    b = render(g, cams, backend="cpu")
    assert torch.equal(a.rgb, b.rgb)


@needs_cpu
@pytest.mark.slow
def test_render_under_torch_compile_matches_eager():
    g = _mixed_scene(300, seed=5)
    cams = _rig(2)

    def loss_fn(means, quats, scales, opacities, sh):
        gg = splatnet.Gaussians(means, quats, scales, opacities, sh, check=False)
        out = render(gg, cams, backend="cpu")
        return out.rgb.mean() + out.depth.mean() + out.alpha.mean()

    leaves = [t.detach().clone().requires_grad_()
              for t in (g.means, g.quats, g.scales, g.opacities, g.sh)]
    compiled = torch.compile(loss_fn)(*leaves)
    compiled.backward()
    grads = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    eager = loss_fn(*leaves)
    eager.backward()
    assert torch.allclose(compiled, eager)
    for a, t in zip(grads, leaves):
        assert torch.allclose(a, t.grad, atol=1e-6)


# ----------------------------------------------------------------------------- gsplat adapter
class _FakeGsplat:
    """``gsplat.rasterization`` re-enacted with the reference (no CUDA here): lets the adapter's
    own logic (channel order, leading dims, the means2d gradient) run on the CPU."""

    @staticmethod
    def rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, *,
                      near_plane, far_plane, eps2d, sh_degree, packed, tile_size, render_mode,
                      rasterize_mode):
        assert sh_degree is None and render_mode == "RGB+D" and not packed and eps2d == 0.3
        lead, n, c = means.shape[:-2], means.shape[-2], viewmats.shape[-3]
        b = math.prod(lead)
        m2d, con, dep, radii, op, _ = reference.project_reference(
            means.reshape(b, n, 3), quats.reshape(b, n, 4), scales.reshape(b, n, 3),
            opacities.reshape(b, n), torch.zeros(b, n, 1, 3, dtype=means.dtype),
            viewmats.reshape(b, c, 4, 4), Ks.reshape(b, c, 3, 3), width, height, 0, near_plane,
            far_plane, rasterize_mode == "antialiased")
        means2d = m2d.reshape(*lead, c, n, 2)  # gsplat's meta tensor is the one rasterized
        values = torch.cat([colors.reshape(b, c, n, -1), dep[..., None]], -1)
        img, alpha = reference.rasterize_reference(means2d.reshape(b, c, n, 2), con, values, op,
                                                   dep, radii, width, height, tile_size)
        return (img.reshape(*lead, c, height, width, -1),
                alpha.reshape(*lead, c, height, width, 1),
                {"means2d": means2d, "radii": radii.reshape(*lead, c, n, 2)})


@pytest.mark.parametrize("case", ["static", "batched", "dynamic"])
def test_gsplat_adapter_logic_matches_torch(monkeypatch, case):
    from gsplat.cuda._torch_impl import _spherical_harmonics

    from splatnet.rendering import api, gsplat_backend

    monkeypatch.setattr(gsplat_backend, "_gsplat", lambda: (_FakeGsplat, _spherical_harmonics))
    batch = () if case == "static" else (2,)
    ts = torch.rand(*batch, 3, dtype=F64) if case == "dynamic" else None
    g = _gaussians(20, batch=batch, seed=6, sh_degree=2, dynamic=case == "dynamic")
    cams = _cameras(3, batch=batch, timestamps=ts)
    feats = torch.randn(*batch, 20, 4, dtype=F64)
    outs = {}
    for backend in ("torch", "gsplat"):
        monkeypatch.setattr(api, "_resolve_backend", lambda *a, b=backend: b)
        leaves = [t.detach().clone().requires_grad_() for t in (g.means, g.quats, g.scales)]
        gg = splatnet.Gaussians(*leaves, g.opacities, g.sh, g.velocities, g.times)
        out = render(gg, cams, features=feats, background=torch.ones(3, dtype=F64),
                     backend=backend)
        (out.rgb.sum() + out.depth.sum() + out.features.sum()).backward()
        outs[backend] = (out, [t.grad for t in leaves])
    (a, ga), (b, gb) = outs["torch"], outs["gsplat"]
    for name in ("rgb", "alpha", "depth", "features", "radii", "visible", "means2d"):
        assert torch.allclose(getattr(a, name).double(), getattr(b, name).double()), name
    assert b.means2d.shape == batch + (3, 20, 2) and b.means2d.grad is not None
    assert torch.allclose(a.means2d.grad, b.means2d.grad)
    for x, y in zip(ga, gb):
        assert torch.allclose(x, y)


@pytest.mark.parametrize("backend", ["torch", pytest.param("cpu", marks=needs_cpu)])
def test_degenerate_positions_give_finite_outputs_and_gradients(backend):
    # Camera at the origin looking along +z: means at its centre, exactly on the near plane,
    # behind it, and one ordinary Gaussian in front.
    means = torch.tensor([[0.0, 0.0, 0.0], [0.05, 0.0, 0.01], [0.0, 0.1, -2.0],
                          [0.1, -0.1, 3.0]])
    n = len(means)
    leaves = [means, torch.tensor([[1.0, 0.2, -0.1, 0.3]] * n), torch.full((n, 3), 0.3),
              torch.full((n,), 0.8), torch.full((n, 16, 3), 0.2)]
    leaves = [t.clone().requires_grad_() for t in leaves]
    g = splatnet.Gaussians(*leaves)
    K = torch.tensor([[[20.0, 0, 12], [0, 20, 9], [0, 0, 1]]])
    cams = splatnet.Cameras(K, torch.eye(4)[None], 24, 18)
    feats = torch.randn(n, 3, requires_grad=True)
    out = render(g, cams, features=feats, antialiased=True, backend=backend)
    assert out.visible[0].tolist() == [False, False, False, True]
    loss = sum(getattr(out, k).sum() for k in ("rgb", "alpha", "depth", "features"))
    loss = loss + out.means2d.sum()
    grads = torch.autograd.grad(loss, leaves + [feats])
    for t in [out.rgb, out.alpha, out.depth, out.features, out.means2d, *grads]:
        assert torch.isfinite(t).all()
    assert grads[0][3].abs().sum() > 0 and not grads[0][:3].any()
