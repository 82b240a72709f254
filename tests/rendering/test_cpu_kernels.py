"""The C++ CPU renderer ops (``csrc/cpu``, via ``splatnet.rendering._ops``) against independent oracles.

Oracles, all float64:
- projection and SH: gsplat's pure-torch reference functions (``gsplat.cuda._torch_impl``),
  plus the opacity-aware screen box of ``csrc/include/splatnet/constants.h`` written out here;
- blending: a dense per-pixel loop written here (no tiles, no binning: every Gaussian against
  every pixel, in depth order), so tile binning, sorting and the row bounds are checked too;
- the API engineer's ``splatnet.rendering.reference`` (an independent tiled implementation).

Gradients are compared with torch autograd through those float64 oracles. The scenes use fixed
seeds; a float32 kernel can only disagree with a float64 oracle where some pixel sits within
rounding of a discrete threshold (α = 1/255, α = 0.99, T = 1e-4, the FOV clamp, a box edge), which
flips a decision and moves that Gaussian's gradient by a finite amount. None of the seeded scenes
below has such a pixel (the tight tolerances would fail if one had), so no masking is needed.
"""

from __future__ import annotations

import math

import pytest
import torch

from splatnet.rendering import _ops

gsplat_impl = pytest.importorskip("gsplat.cuda._torch_impl")

ALPHA_MIN, ALPHA_MAX, T_MIN, EPS2D = 1.0 / 255.0, 0.99, 1e-4, 0.3


# ----------------------------------------------------------------------------- scenes
def _rotation(axis_angle: torch.Tensor) -> torch.Tensor:
    theta = axis_angle.norm()
    k = axis_angle / theta
    kx = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + math.sin(theta) * kx + (1 - math.cos(theta)) * kx @ kx


def make_scene(B=1, N=200, C=2, W=64, H=48, K=16, seed=0, special=True):
    """Float64 scene: Gaussians in front of C slightly rotated cameras, plus (when ``special``)
    off-screen, behind-camera, tiny, huge and overlapping ones."""
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    means = torch.randn(B, N, 3, generator=g, dtype=f64) * torch.tensor([1.5, 1.0, 0.8], dtype=f64)
    means[..., 2] += 5.0
    quats = torch.randn(B, N, 4, generator=g, dtype=f64)
    scales = torch.exp(torch.empty(B, N, 3, dtype=f64).uniform_(math.log(0.02), math.log(0.4), generator=g))
    opac = torch.rand(B, N, generator=g, dtype=f64) * 0.9 + 0.05
    sh = torch.randn(B, N, K, 3, generator=g, dtype=f64) * 0.3
    if special and N >= 40:
        means[:, 0:4, 0] = torch.tensor([40.0, -40.0, 3.0, -3.0])  # off-screen (x/z ≫ FOV)
        means[:, 0:4, 2] = torch.tensor([5.0, 5.0, -2.0, -4.0])  # the last two behind the camera
        scales[:, 4:8] = 1e-4  # tiny: the dilation makes them ~a pixel
        scales[:, 8:10] = 3.0  # huge: cover the image
        means[:, 8:10] = torch.tensor([[0.3, 0.2, 6.0], [-0.5, 0.1, 9.0]], dtype=f64)
        opac[:, 8:10] = 0.3
        means[:, 10:40] = torch.tensor([0.2, -0.1, 4.0], dtype=f64) + 0.05 * torch.randn(
            B, 30, 3, generator=g, dtype=f64)  # overlapping cluster
    viewmats = torch.eye(4, dtype=f64).repeat(B, C, 1, 1)
    for b in range(B):
        for c in range(C):
            if b == 0 and c == 0:
                continue
            viewmats[b, c, :3, :3] = _rotation(0.15 * torch.randn(3, generator=g, dtype=f64))
            viewmats[b, c, :3, 3] = 0.3 * torch.randn(3, generator=g, dtype=f64)
    Ks = torch.tensor([[0.9 * W, 0.0, 0.52 * W], [0.0, 0.9 * W, 0.47 * H], [0.0, 0.0, 1.0]],
                      dtype=f64).repeat(B, C, 1, 1)
    return [means, quats, scales, opac, sh, viewmats, Ks]


def f32(ts):
    return [t.to(torch.float32) for t in ts]


# ----------------------------------------------------------------------------- oracles
def oracle_project(means, quats, scales, opacities, sh, viewmats, Ks, W, H, deg, near=0.01,
                   far=1e10, antialiased=False):
    """Stage 1 from gsplat's reference functions (float64, differentiable)."""
    covars, _ = gsplat_impl._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    _, means2d, depths, conics, comp = gsplat_impl._fully_fused_projection(
        means, covars, viewmats, Ks, W, H, eps2d=EPS2D, near_plane=near, far_plane=far,
        calc_compensations=True)
    B, C, N = depths.shape
    opac = opacities[:, None, :].expand(B, C, N)
    if antialiased:
        opac = opac * comp
    with torch.no_grad():  # the opacity-aware screen box of constants.h
        a, b, c = conics.unbind(-1)
        det = a * c - b * b
        sxx, syy = c / det, a / det  # diagonal of Σ' = conic⁻¹
        lr = torch.log(opac / ALPHA_MIN)
        k = torch.sqrt(2 * lr.clamp_min(0))
        rx, ry = torch.ceil(k * sxx.sqrt()), torch.ceil(k * syy.sqrt())
        mx, my = means2d.unbind(-1)
        keep = ((depths > near) & (depths < far) & (lr > 0) & (rx > 0) & (ry > 0)
                & (mx + rx > 0) & (mx - rx < W) & (my + ry > 0) & (my - ry < H))
        radii = (torch.stack([rx, ry], -1) * keep[..., None]).to(torch.int32)
    campos = -(viewmats[..., :3, :3].transpose(-1, -2) @ viewmats[..., :3, 3:]).squeeze(-1)
    dirs = means[:, None] - campos[:, :, None]
    colors = gsplat_impl._spherical_harmonics(deg, dirs, sh[:, None].expand(B, C, *sh.shape[1:]))
    colors = (colors + 0.5).clamp_min(0.0)
    return means2d, conics, depths, radii, opac, colors


def oracle_rasterize(means2d, conics, values, opac, depths, radii, W, H):
    """Stage 2, dense: every pixel against every (uncropped) Gaussian, front to back."""
    B, C, N = opac.shape
    ys, xs = torch.meshgrid(torch.arange(H, dtype=values.dtype), torch.arange(W, dtype=values.dtype),
                            indexing="ij")
    px, py = xs.reshape(-1) + 0.5, ys.reshape(-1) + 0.5
    images, alphas = [], []
    for b in range(B):
        for c in range(C):
            ids = torch.nonzero((radii[b, c] > 0).all(-1)).squeeze(-1)
            ids = ids[torch.sort(depths[b, c, ids].detach(), stable=True).indices]
            T = torch.ones_like(px)
            done = torch.zeros_like(px, dtype=torch.bool)
            img = values.new_zeros(px.shape[0], values.shape[-1])
            for i in ids.tolist():
                dx, dy = px - means2d[b, c, i, 0], py - means2d[b, c, i, 1]
                a, bb, cc = conics[b, c, i]
                sigma = 0.5 * (a * dx * dx + cc * dy * dy) + bb * dx * dy
                al = torch.clamp_max(opac[b, c, i] * torch.exp(-sigma), ALPHA_MAX)
                vis = al >= ALPHA_MIN
                next_t = T * (1 - al)
                stop = vis & (next_t < T_MIN)
                blend = vis & ~stop & ~done
                done = done | stop
                w = torch.where(blend, al * T, torch.zeros_like(al))
                img = img + w[:, None] * values[b, c, i]
                T = torch.where(blend, next_t, T)
            images.append(img.reshape(H, W, -1))
            alphas.append((1 - T).reshape(H, W, 1))
    return (torch.stack(images).reshape(B, C, H, W, -1), torch.stack(alphas).reshape(B, C, H, W, 1))


def render(proj, ras, scene, W, H, deg=3, antialiased=False, tile=16):
    m2d, con, dep, rad, op, col = proj(*scene, W, H, deg, 0.01, 1e10, antialiased)
    values = torch.cat([col, dep[..., None]], -1)
    img, alpha = ras(m2d, con, values, op, dep, rad, W, H, *([tile] if tile else []))
    return (m2d, con, dep, rad, op, col), img, alpha


# ----------------------------------------------------------------------------- projection
@pytest.mark.parametrize("antialiased", [False, True])
@pytest.mark.parametrize("deg", [0, 1, 2, 3])
def test_project_matches_gsplat(deg, antialiased):
    W, H = 64, 48
    scene = make_scene(B=2, C=3, N=120, W=W, H=H, seed=deg)
    got = _ops.project(*f32(scene), W, H, deg, 0.01, 1e10, antialiased)
    want = oracle_project(*scene, W, H, deg, antialiased=antialiased)
    rad_got, rad_want = got[3], want[3]
    # Integer boxes: equal except where k·sqrt(Σ') rounds to an integer edge (none here).
    assert torch.equal(rad_got, rad_want)
    vis = (rad_want > 0).all(-1)
    assert vis.sum() > 100 and (~vis).sum() > 10  # both kinds present
    for name, i, tol in [("means2d", 0, 2e-4), ("conics", 1, 1e-5), ("depths", 2, 1e-5),
                         ("opac", 4, 1e-5), ("colors", 5, 1e-5)]:
        g, w = got[i][vis].double(), want[i][vis]
        err = (g - w).abs().max().item()
        assert err <= tol * max(1.0, w.abs().max().item()), f"{name}: max abs error {err}"
    # Culled: all zero except the depth.
    assert (got[0][~vis] == 0).all() and (got[1][~vis] == 0).all() and (got[5][~vis] == 0).all()
    torch.testing.assert_close(got[2].double(), want[2], rtol=1e-6, atol=1e-5)


def test_project_backward_matches_gsplat_autograd():
    W, H = 64, 48
    for antialiased in (False, True):
        scene = make_scene(B=2, C=3, N=100, W=W, H=H, seed=7)
        grads = []
        for inputs, proj in ((f32(scene), _ops.project), (scene, oracle_project)):
            leaves = [t.clone().requires_grad_(i < 5) for i, t in enumerate(inputs)]
            out = proj(*leaves, W, H, 3, 0.01, 1e10, antialiased)
            vis = (out[3] > 0).all(-1)
            gen = torch.Generator().manual_seed(3)
            loss = 0
            for i in (0, 1, 2, 4, 5):
                w = torch.randn(out[i].shape, generator=gen, dtype=torch.float64).to(out[i].dtype)
                mask = vis if i != 2 else torch.ones_like(vis)  # culled outputs carry no gradient
                mask = mask.reshape(mask.shape + (1,) * (out[i].dim() - mask.dim()))
                loss = loss + (out[i] * w * mask).sum()
            loss.backward()
            grads.append([t.grad for t in leaves[:5]])
        for name, g, w in zip(["means", "quats", "scales", "opacities", "sh"], *grads):
            torch.testing.assert_close(g.double(), w, rtol=1e-3, atol=1e-4 * w.abs().max().item(),
                                       msg=lambda m, n=name: f"{n}: {m}")


def test_near_plane_camera_centre_and_degenerate_shapes_give_no_nan():
    W, H = 32, 32
    scene = f32(make_scene(N=6, W=W, H=H, special=False))
    means = scene[0]
    means[0, 0] = torch.tensor([0.0, 0.0, 0.0])  # camera centre
    means[0, 1] = torch.tensor([0.1, 0.0, 0.01])  # exactly at the near plane
    means[0, 2] = torch.tensor([0.0, 0.0, 1e-30])
    scene[1][0, 3] = 0.0  # zero quaternion (no rotation defined)
    scene[2][0, 4] = 0.0  # zero scales (a point; the dilation keeps it a pixel wide)
    leaves = [t.clone().requires_grad_(i < 5) for i, t in enumerate(scene)]
    (m2d, con, dep, rad, op, col), img, alpha = render(_ops.project, _ops.rasterize, leaves, W, H)
    assert (rad[0, 0, :3] == 0).all()  # culled
    for t in (m2d, con, dep, op, col, img, alpha):
        assert torch.isfinite(t).all()
    (img.sum() + alpha.sum() + dep.sum()).backward()
    for t in leaves[:5]:
        assert torch.isfinite(t.grad).all()


# ----------------------------------------------------------------------------- rasterize
@pytest.mark.parametrize("antialiased", [False, True])
def test_render_forward_and_gradients_match_oracles(antialiased):
    """Both stages, B=2 scenes × C=2 cameras, rgb + depth channels, every input's gradient."""
    W, H = 56, 40
    scene = make_scene(B=2, C=2, N=150, W=W, H=H, seed=11)
    results = []
    for inputs, proj, ras, tile in ((f32(scene), _ops.project, _ops.rasterize, 16),
                                    (scene, oracle_project, oracle_rasterize, None)):
        leaves = [t.clone().requires_grad_(i < 5) for i, t in enumerate(inputs)]
        stage1, img, alpha = render(proj, ras, leaves, W, H, antialiased=antialiased, tile=tile)
        stage1[0].retain_grad()
        gen = torch.Generator().manual_seed(1)
        w_img = torch.randn(img.shape, generator=gen, dtype=torch.float64).to(img.dtype)
        w_alpha = torch.randn(alpha.shape, generator=gen, dtype=torch.float64).to(img.dtype)
        ((img * w_img).sum() + (alpha * w_alpha).sum()).backward()
        results.append((img, alpha, [stage1[0].grad] + [t.grad for t in leaves[:5]]))
    (img, alpha, g_got), (img_ref, alpha_ref, g_ref) = results
    assert alpha_ref.mean() > 0.3  # the scene covers the images
    assert (img.double() - img_ref).abs().max() <= 1e-4
    assert (alpha.double() - alpha_ref).abs().max() <= 1e-4
    for name, g, w in zip(["means2d", "means", "quats", "scales", "opacities", "sh"], g_got, g_ref):
        assert w.abs().max() > 0, name
        torch.testing.assert_close(g.double(), w, rtol=1e-3, atol=1e-4 * w.abs().max().item(),
                                   msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("channels", [1, 3, 5, 17, 68])
def test_rasterize_generic_channels(channels):
    W, H = 40, 35  # partial tiles on both axes
    scene = make_scene(B=1, C=2, N=80, W=W, H=H, seed=channels)
    with torch.no_grad():
        m2d, con, dep, rad, op, _ = oracle_project(*scene, W, H, 0)
    gen = torch.Generator().manual_seed(channels)
    values = torch.randn(*op.shape, channels, generator=gen, dtype=torch.float64)
    inputs = [m2d, con, values, op]
    results = []
    for cast, ras in ((torch.float32, _ops.rasterize), (torch.float64, oracle_rasterize)):
        leaves = [t.to(cast).requires_grad_() for t in inputs]
        img, alpha = ras(*leaves, dep.to(cast), rad, W, H)
        w = torch.randn(img.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        ((img * w.to(cast)).sum() + alpha.sum()).backward()
        results.append((img, alpha, [t.grad for t in leaves]))
    (img, alpha, g_got), (img_ref, alpha_ref, g_ref) = results
    assert (img.double() - img_ref).abs().max() <= 1e-4
    assert (alpha.double() - alpha_ref).abs().max() <= 1e-4
    for name, g, w in zip(["means2d", "conics", "values", "opac"], g_got, g_ref):
        torch.testing.assert_close(g.double(), w, rtol=1e-3, atol=1e-4 * w.abs().max().item(),
                                   msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("tile", [4, 8, 32])
def test_tile_size_does_not_change_the_image(tile):
    W, H = 70, 45
    scene = f32(make_scene(B=1, C=1, N=150, W=W, H=H, seed=5))
    _, img16, a16 = render(_ops.project, _ops.rasterize, scene, W, H, tile=16)
    _, img, a = render(_ops.project, _ops.rasterize, scene, W, H, tile=tile)
    assert (img - img16).abs().max() <= 1e-5 and (a - a16).abs().max() <= 1e-5


def test_matches_splatnet_reference_backend():
    reference = pytest.importorskip("splatnet.rendering.reference")
    W, H = 64, 48
    scene = make_scene(B=1, C=2, N=150, W=W, H=H, seed=21)
    _, img, alpha = render(_ops.project, _ops.rasterize, f32(scene), W, H, antialiased=True)
    _, img_ref, alpha_ref = render(reference.project_reference, reference.rasterize_reference,
                                   scene, W, H, antialiased=True)
    assert (img.double() - img_ref).abs().max() <= 1e-4
    assert (alpha.double() - alpha_ref).abs().max() <= 1e-4


def test_opaque_pixels_stop_early():
    """A wall of opaque Gaussians: T reaches the 1e-4 stop and the list walk ends there."""
    W, H = 32, 32
    n = 40
    means2d = torch.full((1, 1, n, 2), 16.0)
    conics = torch.tensor([0.001, 0.0, 0.001]).expand(1, 1, n, 3).contiguous()
    opac = torch.full((1, 1, n), 0.9)
    depths = torch.arange(1, n + 1, dtype=torch.float32).reshape(1, 1, n)
    radii = torch.full((1, 1, n, 2), 40, dtype=torch.int32)
    values = torch.rand(1, 1, n, 3, generator=torch.Generator().manual_seed(0))
    out = torch.ops.splatnet.rasterize_forward(means2d, conics, values, opac, depths, radii, W, H, 16)
    ref = oracle_rasterize(means2d.double(), conics.double(), values.double(), opac.double(),
                           depths.double(), radii, W, H)
    assert (out[0].double() - ref[0]).abs().max() <= 1e-5
    last = out[4]
    assert last.max() < n and last.min() > 0  # every pixel stopped before the end of the list
    assert (out[5] >= T_MIN).all()


# ----------------------------------------------------------------------------- edge cases
def test_zero_gaussians_and_zero_visible():
    W, H = 20, 10
    scene = [t[:, :0] if i < 5 else t for i, t in enumerate(f32(make_scene(N=10, special=False)))]
    leaves = [t.clone().requires_grad_(i < 5) for i, t in enumerate(scene)]
    stage1, img, alpha = render(_ops.project, _ops.rasterize, leaves, W, H)
    assert img.shape == (1, 2, H, W, 4) and (img == 0).all() and (alpha == 0).all()
    (img.sum() + alpha.sum()).backward()
    assert leaves[0].grad.shape == (1, 0, 3)
    # Gaussians that are all behind the camera: nothing binned.
    scene = f32(make_scene(N=10, special=False))
    scene[0][..., 2] = -3.0
    _, img, alpha = render(_ops.project, _ops.rasterize, scene, W, H)
    assert (img == 0).all() and (alpha == 0).all()


@pytest.mark.parametrize("index,name", [(0, "means"), (1, "quats"), (3, "opacities"), (4, "sh"),
                                        (5, "viewmats")])
def test_non_finite_input_raises_naming_it(index, name):
    scene = f32(make_scene(N=10, special=False))
    scene[index].view(-1)[3] = float("nan") if index != 3 else float("inf")
    with pytest.raises(RuntimeError, match=f"'{name}'.*non-finite"):
        _ops.project(*scene, 32, 32, 3)


def test_rasterize_non_finite_values_raise():
    m2d = torch.zeros(1, 1, 2, 2)
    con = torch.ones(1, 1, 2, 3)
    values = torch.tensor([[[[1.0], [float("nan")]]]])
    with pytest.raises(RuntimeError, match="'values'.*non-finite"):
        _ops.rasterize(m2d, con, values, torch.ones(1, 1, 2), torch.ones(1, 1, 2),
                       torch.ones(1, 1, 2, 2, dtype=torch.int32), 8, 8)


def test_bad_shapes_dtypes_and_layouts_raise_naming_the_argument():
    scene = f32(make_scene(N=10, special=False))
    ops = torch.ops.splatnet
    bad = list(scene)
    bad[2] = scene[2][..., :2].contiguous()
    with pytest.raises(RuntimeError, match="'scales' must have shape"):
        ops.project_forward(*bad, 32, 32, 3, 0.01, 1e10, False)
    bad = list(scene)
    bad[1] = scene[1].double()
    with pytest.raises(RuntimeError, match="'quats' must be Float"):
        ops.project_forward(*bad, 32, 32, 3, 0.01, 1e10, False)
    bad = list(scene)
    bad[0] = torch.zeros(*scene[0].shape[:-1], 4)[..., :3].copy_(scene[0])  # strided view
    assert not bad[0].is_contiguous()
    with pytest.raises(RuntimeError, match="'means' must be contiguous"):
        ops.project_forward(*bad, 32, 32, 3, 0.01, 1e10, False)
    with pytest.raises(RuntimeError, match="sh_degree 3 needs 16"):
        ops.project_forward(*scene[:4], scene[4][:, :, :4].contiguous(), *scene[5:], 32, 32, 3, 0.01,
                            1e10, False)
    m2d, con, dep, rad, op, col = _ops.project(*scene, 32, 32, 3)
    with pytest.raises(RuntimeError, match="'radii' must be Int"):
        ops.rasterize_forward(m2d, con, col, op, dep, rad.long(), 32, 32, 16)
    with pytest.raises(RuntimeError, match="tile_size"):
        ops.rasterize_forward(m2d, con, col, op, dep, rad, 32, 32, 0)
    from splatnet.errors import ValidationError

    with pytest.raises(ValidationError, match="float32"):
        _ops.project(*make_scene(N=10, special=False), 32, 32, 3)


def test_opcheck_schemas_fake_and_autograd_registrations():
    """torch.library.opcheck: schema, fake (meta) impl and autograd registration agree."""
    W, H = 24, 16
    scene = f32(make_scene(N=12, W=W, H=H, special=False))
    args = (*[t.clone().requires_grad_(i < 5) for i, t in enumerate(scene)], W, H, 3, 0.01, 1e10,
            False)
    torch.library.opcheck(torch.ops.splatnet.project_forward.default, args)
    with torch.no_grad():
        m2d, con, dep, rad, op, col = _ops.project(*scene, W, H, 3)
    rargs = (m2d.requires_grad_(), con.requires_grad_(), col.requires_grad_(), op.requires_grad_(),
             dep, rad, W, H, 16)
    torch.library.opcheck(torch.ops.splatnet.rasterize_forward.default, rargs,
                          test_utils=("test_schema", "test_autograd_registration",
                                      "test_faketensor"))


@pytest.mark.slow
def test_torch_compile_fullgraph_forward_and_backward():
    W, H = 32, 24
    scene = f32(make_scene(N=30, W=W, H=H, special=False))

    def loss_fn(*inputs):
        _, img, alpha = render(_ops.project, _ops.rasterize, inputs, W, H)
        return img.square().sum() + alpha.sum()

    grads = []
    for fn in (torch.compile(loss_fn, fullgraph=True), loss_fn):
        leaves = [t.clone().requires_grad_(i < 5) for i, t in enumerate(scene)]
        loss_fn_value = fn(*leaves)
        loss_fn_value.backward()
        grads.append([t.grad for t in leaves[:5]] + [loss_fn_value.detach()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cameras", [1, 5])
def test_thread_count_does_not_change_results(cameras):
    """The backward accumulates per image (no atomics) or per tile (atomics) depending on the
    thread and image counts; both must give the same gradients, and the forward the same image."""
    W, H = 48, 40
    scene = f32(make_scene(B=1, C=cameras, N=120, W=W, H=H, seed=3))
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            leaves = [t.clone().requires_grad_(i < 5) for i, t in enumerate(scene)]
            _, img, alpha = render(_ops.project, _ops.rasterize, leaves, W, H)
            (img.square().sum() + alpha.sum()).backward()
            results.append([img, alpha] + [t.grad for t in leaves[:5]])
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item())


def test_cuda_tensors_without_cuda_kernels_name_the_fix():
    from splatnet import _ext
    from splatnet.errors import BackendUnavailableError

    if _ext.cuda_unavailable_reason() is None:
        pytest.skip("the CUDA kernels are available here")

    class FakeCudaTensor:  # stands in for a CUDA tensor on a CPU-only torch
        is_cuda = True

    with pytest.raises(BackendUnavailableError, match="CUDA"):
        _ops._require(FakeCudaTensor())
