"""The pure-torch renderer (``splatnet.rendering.reference``) against independent oracles: gsplat's
pure-PyTorch projection and SH, a per-pixel sequential blending loop, a hand computation, and
float64 finite differences (gradcheck)."""

from __future__ import annotations

import math

import pytest
import torch

from splatnet.cameras import look_at_pose
from splatnet.rendering import reference as ref

gsplat_impl = pytest.importorskip("gsplat.cuda._torch_impl")

F64 = torch.float64


def _scene(n=40, c=2, width=40, height=32, seed=0, dtype=F64, sh_degree=2, spread=1.5):
    """Random Gaussians around the origin and cameras on a circle looking at it."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(1, n, 3, generator=g, dtype=dtype) * spread
    quats = torch.randn(1, n, 4, generator=g, dtype=dtype)
    scales = torch.rand(1, n, 3, generator=g, dtype=dtype) * 0.3 + 0.02
    opac = torch.rand(1, n, generator=g, dtype=dtype) * 0.9 + 0.05
    sh = torch.randn(1, n, (sh_degree + 1) ** 2, 3, generator=g, dtype=dtype) * 0.4
    viewmats, Ks = _cameras(c, width, height, dtype)
    return means, quats, scales, opac, sh, viewmats, Ks


def _cameras(c, width, height, dtype=F64, radius=6.0):
    views, ks = [], []
    for i in range(c):
        a = 2 * math.pi * i / c + 0.3
        eye = (radius * math.cos(a), radius * math.sin(a), 1.0)
        v = torch.linalg.inv(look_at_pose(eye, (0.0, 0.0, 0.0))).to(dtype)  # world → camera
        views.append(v)
        f = 0.8 * width
        ks.append(torch.tensor([[f, 0, width / 2 + 0.7 * i], [0, f * 1.05, height / 2 - 0.4],
                                [0, 0, 1]], dtype=dtype))
    return torch.stack(views)[None], torch.stack(ks)[None]


# ----------------------------------------------------------------------------- projection
@pytest.mark.parametrize("antialiased", [False, True])
def test_projection_matches_gsplat(antialiased):
    means, quats, scales, opac, sh, viewmats, Ks = _scene(n=300, c=3, spread=4.0)
    W, H = 40, 32
    m2d, conics, depths, radii, opac2, _ = ref.project_reference(
        means, quats, scales, opac, sh, viewmats, Ks, W, H, 2, 0.01, 1e10, antialiased)

    covars, _ = gsplat_impl._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    assert torch.allclose(ref.quat_scale_to_covariance(quats, scales), covars, atol=1e-12)
    g_radii, g_m2d, g_depths, g_conics, g_comp = gsplat_impl._fully_fused_projection(
        means, covars, viewmats, Ks, W, H, calc_compensations=antialiased)
    g_opac = opac[:, None].expand_as(g_depths) * (g_comp if antialiased else 1)
    # gsplat's torch reference uses a fixed 3.33σ box; its CUDA kernels (and we) use the
    # opacity-aware one, k = sqrt(2 ln(o / (1/255))).
    cov_xx = g_conics[..., 2] / (g_conics[..., 0] * g_conics[..., 2] - g_conics[..., 1] ** 2)
    cov_yy = g_conics[..., 0] / (g_conics[..., 0] * g_conics[..., 2] - g_conics[..., 1] ** 2)
    k = torch.sqrt(2 * torch.log(g_opac.clamp_min(1e-30) * 255).clamp_min(0))
    want = torch.stack([torch.ceil(k * cov_xx.sqrt()), torch.ceil(k * cov_yy.sqrt())], -1)
    inside = ((g_m2d[..., 0] + want[..., 0] > 0) & (g_m2d[..., 0] - want[..., 0] < W)
              & (g_m2d[..., 1] + want[..., 1] > 0) & (g_m2d[..., 1] - want[..., 1] < H))
    vis_want = (g_radii > 0).all(-1) & (g_opac > 1 / 255) & inside
    vis = (radii > 0).all(-1)
    assert torch.equal(vis, vis_want)
    assert 50 < int(vis.sum()) < vis.numel()  # the scene has both visible and culled Gaussians
    assert torch.equal(radii[vis], want[vis].int())
    assert torch.allclose(m2d[vis], g_m2d[vis], rtol=1e-12, atol=1e-9)
    assert torch.allclose(conics[vis], g_conics[vis], rtol=1e-10, atol=1e-12)
    assert torch.allclose(depths, g_depths, atol=1e-12)
    assert torch.allclose(opac2[vis], g_opac[vis], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_colours_match_gsplat(degree):
    means, quats, scales, opac, _, viewmats, Ks = _scene(n=50, c=2)
    sh = torch.randn(1, 50, 16, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    *_, radii, _, colors = ref.project_reference(means, quats, scales, opac, sh, viewmats, Ks,
                                                 40, 32, degree)
    vis = (radii > 0).all(-1)
    assert vis.sum() > 40 and not (colors[~vis] != 0).any()  # culled ones: zero, as the ops
    centres = torch.linalg.inv(viewmats)[..., :3, 3]  # [1, C, 3]
    dirs = means[:, None] - centres[:, :, None]
    want = gsplat_impl._spherical_harmonics(degree, dirs, sh[:, None].expand(1, 2, 50, 16, 3))
    want = torch.clamp_min(want + 0.5, 0.0)
    assert torch.allclose(colors[vis], want[vis], atol=1e-12)
    assert (want[vis] == 0).any() or degree == 0  # the clamp at 0 is exercised


def test_fov_clamp_of_the_jacobian():
    # A Gaussian far off to the side: its footprint is computed at the clamped x/z (1.3× the
    # half field of view measured from the principal point), as in gsplat.
    W, H = 40, 32
    viewmats = torch.eye(4, dtype=F64)[None, None]
    Ks = torch.tensor([[[[30.0, 0, 18], [0, 30, 16], [0, 0, 1]]]], dtype=F64)
    means = torch.tensor([[[3.0, 0.0, 2.0]]], dtype=F64)  # x/z = 1.5, far past the limit
    quats = torch.tensor([[[1.0, 0, 0, 0]]], dtype=F64)
    scales = torch.full((1, 1, 3), 3.0, dtype=F64)  # big enough to reach the image
    opac = torch.ones(1, 1, dtype=F64) * 0.9
    sh = torch.zeros(1, 1, 1, 3, dtype=F64)
    m2d, conics, *_ = ref.project_reference(means, quats, scales, opac, sh, viewmats, Ks, W, H, 0)
    lim = (W - 18) / 30 + 0.3 * 0.5 * W / 30
    fx, z, s2 = 30.0, 2.0, 9.0
    jx = [fx / z, 0, -fx * lim / z]  # J row 0 at the clamped x/z
    jy = [0, fx / z, 0]
    cxx = s2 * sum(v * v for v in jx) + 0.3
    cyy = s2 * sum(v * v for v in jy) + 0.3
    cxy = s2 * sum(a * b for a, b in zip(jx, jy))
    det = cxx * cyy - cxy * cxy
    assert torch.allclose(conics[0, 0, 0], torch.tensor([cyy / det, -cxy / det, cxx / det],
                                                        dtype=F64), rtol=1e-12)
    assert torch.allclose(m2d[0, 0, 0], torch.tensor([fx * 1.5 + 18, 16.0], dtype=F64))


# ----------------------------------------------------------------------------- rasterization
def _blend_loop(means2d, conics, values, opac, depths, radii, width, height):
    """Oracle: docs/conventions.md blending written as the plain sequential loop, Gaussian by
    Gaussian in depth order, all pixels at once, no tiles and no bounding boxes."""
    order = torch.argsort(depths, stable=True)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=F64), torch.arange(width, dtype=F64),
                            indexing="ij")
    px, py = xs + 0.5, ys + 0.5
    T = torch.ones(height, width, dtype=F64)
    done = torch.zeros(height, width, dtype=torch.bool)
    out = torch.zeros(height, width, values.shape[-1], dtype=F64)
    acc = torch.zeros(height, width, dtype=F64)
    for i in order.tolist():
        if not bool((radii[i] > 0).all()):
            continue
        a, b, c = conics[i].tolist()
        dx, dy = px - means2d[i, 0], py - means2d[i, 1]
        alpha = torch.clamp_max(opac[i] * torch.exp(-(0.5 * (a * dx**2 + c * dy**2) + b * dx * dy)),
                                0.99)
        visible = alpha >= 1 / 255
        next_t = T * (1 - alpha)
        stop = visible & (next_t < 1e-4)
        blend = visible & ~stop & ~done
        done = done | stop
        w = torch.where(blend, alpha * T, 0.0)
        out += w[..., None] * values[i]
        acc += w
        T = torch.where(blend, next_t, T)
    _blend_loop.stopped = int(done.sum())
    return out, acc[..., None]


def _projected(n=60, width=37, height=29, seed=0, opacity_scale=1.0, scale=0.3):
    means, quats, scales, opac, sh, viewmats, Ks = _scene(n=n, c=1, width=width, height=height,
                                                          seed=seed)
    scales = scales * scale / 0.3
    opac = (opac * opacity_scale).clamp(max=1.0)
    m2d, conics, depths, radii, o, colors = ref.project_reference(
        means, quats, scales, opac, sh, viewmats, Ks, width, height, 2)
    feats = torch.randn(1, 1, n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)
    values = torch.cat([colors, depths[..., None], feats], -1)
    return m2d, conics, values, o, depths, radii


@pytest.mark.parametrize("seed,opacity_scale,n", [(0, 1.0, 60), (1, 1.5, 60), (2, 3.0, 300)])
def test_rasterize_matches_sequential_loop(seed, opacity_scale, n):
    # opacity_scale > 1 saturates opacities at 1: the 0.99 clamp and the T < 1e-4 stop happen.
    m2d, conics, values, o, depths, radii = _projected(n=n, seed=seed, opacity_scale=opacity_scale)
    W, H = 37, 29
    img, alpha = ref.rasterize_reference(m2d, conics, values, o, depths, radii, W, H)
    want_img, want_alpha = _blend_loop(m2d[0, 0], conics[0, 0], values[0, 0], o[0, 0],
                                       depths[0, 0], radii[0, 0], W, H)
    assert torch.allclose(img[0, 0], want_img, atol=1e-12)
    assert torch.allclose(alpha[0, 0], want_alpha, atol=1e-12)
    if opacity_scale > 2:
        assert _blend_loop.stopped > 20  # some pixels reached the stop


def test_rasterize_is_independent_of_tiling_and_steps(monkeypatch):
    m2d, conics, values, o, depths, radii = _projected(n=80, seed=4, opacity_scale=2.0)
    W, H = 37, 29
    base = ref.rasterize_reference(m2d, conics, values, o, depths, radii, W, H)
    for tile in (4, 8, 64):
        got = ref.rasterize_reference(m2d, conics, values, o, depths, radii, W, H, tile)
        assert torch.allclose(got[0], base[0], atol=1e-12) and torch.allclose(got[1], base[1])
    # Huge bounding boxes: the boxes only cut where α < 1/255, so nothing changes.
    big = torch.where(radii > 0, torch.full_like(radii, 1000), radii)
    got = ref.rasterize_reference(m2d, conics, values, o, depths, big, W, H)
    assert torch.allclose(got[0], base[0], atol=1e-12)
    # Gaussians taken a few at a time (T and the stop carried between steps).
    monkeypatch.setattr(ref, "_PAIRS_PER_STEP", 3 * 256)
    got = ref.rasterize_reference(m2d, conics, values, o, depths, radii, W, H)
    assert torch.allclose(got[0], base[0], atol=1e-12)


def test_checkpointed_tiles_give_the_same_gradients(monkeypatch):
    m2d, conics, values, o, depths, radii = _projected(n=30, seed=5)
    inputs = [t.detach().requires_grad_() for t in (m2d, conics, values, o)]

    def grads():
        img, alpha = ref.rasterize_reference(*inputs, depths, radii, 37, 29)
        w = torch.linspace(-1, 1, img.numel(), dtype=F64).reshape(img.shape)
        return torch.autograd.grad((img * w).sum() + alpha.sum(), inputs)

    base = grads()
    monkeypatch.setattr(ref, "_PAIRS_BEFORE_CHECKPOINT", 0)
    for a, b in zip(grads(), base):
        assert torch.allclose(a, b, atol=1e-12)


def test_single_gaussian_by_hand():
    # An isotropic Gaussian on the optical axis at depth 4 projects to the centre of pixel
    # (10, 8); its screen variance is (f s / z)² + 0.3 in both axes.
    W, H, f, z, s, o = 24, 20, 20.0, 4.0, 0.5, 0.8
    viewmats = torch.eye(4, dtype=F64)[None, None]
    Ks = torch.tensor([[[[f, 0, 10.5], [0, f, 8.5], [0, 0, 1]]]], dtype=F64)
    means = torch.tensor([[[0.0, 0.0, z]]], dtype=F64)
    quats = torch.tensor([[[0.3, -0.2, 0.5, 0.1]]], dtype=F64)  # isotropic: rotation irrelevant
    scales = torch.full((1, 1, 3), s, dtype=F64)
    sh = torch.tensor([[[[0.4, -0.3, 1.0]]]], dtype=F64)
    m2d, conics, depths, radii, op, colors = ref.project_reference(
        means, quats, scales, torch.tensor([[o]], dtype=F64), sh, viewmats, Ks, W, H, 0)
    var = (f * s / z) ** 2 + 0.3  # 6.55
    assert torch.allclose(conics[0, 0, 0], torch.tensor([1 / var, 0, 1 / var], dtype=F64))
    r = math.ceil(math.sqrt(2 * math.log(o * 255)) * math.sqrt(var))
    assert radii[0, 0, 0].tolist() == [r, r]
    values = torch.cat([colors, depths[..., None]], -1)
    img, alpha = ref.rasterize_reference(m2d, conics, values, op, depths, radii, W, H)
    colour = [0.5 + 0.28209479177387814 * c for c in (0.4, -0.3, 1.0)]
    for x, y in [(10, 8), (13, 8), (12, 6), (0, 0)]:
        a = o * math.exp(-0.5 * ((x - 10) ** 2 + (y - 8) ** 2) / var)
        a = a if a >= 1 / 255 else 0.0
        assert float(alpha[0, 0, y, x, 0]) == pytest.approx(a, abs=1e-14)
        for ch in range(3):
            assert float(img[0, 0, y, x, ch]) == pytest.approx(a * colour[ch], abs=1e-14)
        assert float(img[0, 0, y, x, 3]) == pytest.approx(a * z, abs=1e-14)


# ----------------------------------------------------------------------------- robustness
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_near_plane_camera_centre_and_behind_give_no_nan(dtype):
    W, H = 16, 12
    viewmats = torch.eye(4, dtype=dtype)[None, None]
    Ks = torch.tensor([[[[10.0, 0, 8], [0, 10, 6], [0, 0, 1]]]], dtype=dtype)
    means = torch.tensor([[[0.0, 0.0, 0.0],  # camera centre
                           [0.1, 0.0, 0.01],  # exactly at the near plane
                           [0.0, 0.2, -1.0],  # behind
                           [1e-9, 0.0, 0.0],  # next to the centre
                           [0.0, 0.0, 3.0]]], dtype=dtype)  # visible
    n = means.shape[1]
    params = [
        means,
        torch.tensor([[1.0, 0.1, 0.2, 0.3]] * n, dtype=dtype)[None],
        torch.full((1, n, 3), 0.2, dtype=dtype),
        torch.full((1, n), 0.7, dtype=dtype),
        torch.full((1, n, 16, 3), 0.1, dtype=dtype),
    ]
    params = [p.requires_grad_() for p in params]
    for aa in (False, True):
        m2d, conics, depths, radii, op, colors = ref.project_reference(
            *params, viewmats, Ks, W, H, 3, 0.01, 1e10, aa)
        assert radii[0, 0, :4].eq(0).all() and radii[0, 0, 4].gt(0).all()
        values = torch.cat([colors, depths[..., None]], -1)
        img, alpha = ref.rasterize_reference(m2d, conics, values, op, depths, radii, W, H)
        outs = (m2d, conics, depths, op, colors, img, alpha)
        assert all(torch.isfinite(t).all() for t in outs)
        loss = sum(t.sum() for t in outs)
        grads = torch.autograd.grad(loss, params)
        assert all(torch.isfinite(g).all() for g in grads)


def test_zero_gaussians():
    viewmats, Ks = _cameras(2, 20, 10)
    empty = [torch.zeros(1, 0, 3, dtype=F64), torch.zeros(1, 0, 4, dtype=F64),
             torch.zeros(1, 0, 3, dtype=F64), torch.zeros(1, 0, dtype=F64),
             torch.zeros(1, 0, 1, 3, dtype=F64)]
    m2d, conics, depths, radii, op, colors = ref.project_reference(*empty, viewmats, Ks, 20, 10, 0)
    assert m2d.shape == (1, 2, 0, 2) and radii.shape == (1, 2, 0, 2)
    values = torch.cat([colors, depths[..., None]], -1)
    img, alpha = ref.rasterize_reference(m2d, conics, values, op, depths, radii, 20, 10)
    assert img.shape == (1, 2, 10, 20, 4) and not img.any() and not alpha.any()


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("antialiased", [False, True])
def test_gradcheck_project_and_rasterize(antialiased):
    """float64 finite differences through both stages (all Gaussian inputs)."""
    W, H = 14, 11
    g = torch.Generator().manual_seed(7)
    n = 4
    means = torch.randn(1, n, 3, generator=g, dtype=F64) * 0.5
    quats = torch.randn(1, n, 4, generator=g, dtype=F64)
    scales = torch.rand(1, n, 3, generator=g, dtype=F64) * 0.3 + 0.2
    opac = torch.rand(1, n, generator=g, dtype=F64) * 0.6 + 0.3
    sh = torch.randn(1, n, 4, 3, generator=g, dtype=F64) * 0.3
    feats = torch.randn(1, n, 2, generator=g, dtype=F64)
    viewmats, Ks = _cameras(2, W, H)

    def fn(means, quats, scales, opac, sh, feats):
        m2d, conics, depths, radii, o, colors = ref.project_reference(
            means, quats, scales, opac, sh, viewmats, Ks, W, H, 1, 0.01, 1e10, antialiased)
        values = torch.cat([colors, depths[..., None], feats[:, None].expand(1, 2, n, 2)], -1)
        img, alpha = ref.rasterize_reference(m2d, conics, values, o, depths, radii, W, H)
        return img, alpha

    img, alpha = fn(means, quats, scales, opac, sh, feats)
    assert float(alpha.max()) > 0.5  # the Gaussians are on screen and overlap
    inputs = tuple(t.requires_grad_() for t in (means, quats, scales, opac, sh, feats))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4,
                                      fast_mode=True)


def test_constants_match_the_shared_header():
    """The Python twins of csrc/include/splatnet/constants.h (one source of truth per value)."""
    import re
    from pathlib import Path

    header = Path(__file__).resolve().parents[2] / "csrc/include/splatnet/constants.h"
    if not header.is_file():
        pytest.skip("csrc/include/splatnet/constants.h not present")
    text = header.read_text()

    def value(name):
        m = re.search(rf"constexpr (?:float|int) {name} = ([^;]+);", text)
        assert m, f"{name} not found in {header.name}"
        parts = [float(x.strip().rstrip("f")) for x in m.group(1).split("/")]  # e.g. 1.0f / 255.0f
        return parts[0] / parts[1] if len(parts) == 2 else parts[0]

    assert value("kTileSize") == ref.TILE_SIZE
    assert value("kDilation") == pytest.approx(ref.EPS2D)
    assert value("kAlphaThreshold") == pytest.approx(ref.ALPHA_MIN)
    assert value("kAlphaMax") == pytest.approx(ref.ALPHA_MAX)
    assert value("kTransmittanceMin") == pytest.approx(ref.T_MIN)
    assert value("kFovClamp") == pytest.approx(ref.FOV_CLAMP)
