"""GPU renderer tests: ``cuda`` vs ``cpu`` vs ``gsplat`` backends, forward and backward.

Skipped without a CUDA device (and the cuda/gsplat parts without their builds). The scenes are
the mixed ones of ``test_render_api.py`` (overlapping, off-screen, behind-camera, near-plane,
sub-pixel, image-filling, opaque Gaussians).
"""

from __future__ import annotations

import pytest
import torch

import splatnet
from splatnet.rendering import render

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

F64 = torch.float64


def _cuda_reason() -> str | None:
    from splatnet import _ext

    try:
        return _ext.cuda_unavailable_reason()
    except splatnet.SplatnetError as exc:
        return str(exc)


def _needs_cuda_kernels():
    reason = _cuda_reason() if torch.cuda.is_available() else "no CUDA device"
    if reason is not None:
        pytest.skip(f"splatnet CUDA kernels unavailable: {reason}")


def _needs_gsplat():
    try:
        import gsplat  # noqa: F401
        from gsplat.cuda._backend import _C
    except ImportError as exc:
        pytest.skip(f"gsplat not installed ({exc})")
    if _C is None:
        pytest.skip("gsplat is installed without its CUDA build")


def _scene(n, batch=(), seed=0, sh_degree=3, dynamic=False, max_opacity=None):
    from test_render_api import _mixed_scene

    g = _mixed_scene(n, batch=batch, seed=seed, sh_degree=sh_degree, dynamic=dynamic)
    if max_opacity is not None:
        g = splatnet.Gaussians(g.means, g.quats, g.scales, g.opacities.clamp(max=max_opacity),
                               g.sh, g.velocities, g.times)
    return g


def _rig(c, batch=(), width=96, height=64, timestamps=None):
    from test_render_api import _rig as rig

    return rig(c, batch=batch, width=width, height=height, timestamps=timestamps)


def _run(g, cams, feats, bg, backend, device, antialiased=False):
    names = ["means", "quats", "scales", "opacities", "sh"] + (["velocities"] if g.is_dynamic else [])
    leaves = {k: getattr(g, k).detach().to(device).clone().requires_grad_() for k in names}
    leaves["features"] = feats.detach().to(device).clone().requires_grad_()
    leaves["background"] = bg.detach().to(device).clone().requires_grad_()
    gg = splatnet.Gaussians(*(leaves[k] for k in names[:5]), leaves.get("velocities"),
                            None if g.times is None else g.times.to(device), check=False)
    out = render(gg, cams.to(device), features=leaves["features"],
                 background=leaves["background"], antialiased=antialiased, backend=backend)
    gen = torch.Generator().manual_seed(7)
    loss = 0
    for name in ("rgb", "alpha", "depth", "features"):
        x = getattr(out, name)
        loss = loss + (x * torch.randn(x.shape, generator=gen).to(device)).sum()
    loss.backward()
    grads = {k: v.grad.detach().cpu().double() for k, v in leaves.items()}
    grads["means2d"] = out.means2d.grad.detach().cpu().double()
    outs = {k: getattr(out, k).detach().cpu() for k in
            ("rgb", "alpha", "depth", "features", "radii", "visible", "means2d")}
    return outs, grads


def _compare(a, b, fwd_tol=1e-4, grad_rtol=1e-3, max_vis_mismatch=0):
    (oa, ga), (ob, gb) = a, b
    mismatch = int((oa["visible"] != ob["visible"]).sum())
    assert mismatch <= max_vis_mismatch, f"{mismatch} visibility flags differ"
    vis = oa["visible"] & ob["visible"]
    assert vis.any()
    for name in ("rgb", "alpha", "depth", "features"):
        x, y = oa[name].double(), ob[name].double()
        tol = fwd_tol * max(1.0, float(y.abs().max())) if name == "depth" else fwd_tol
        err = float((x - y).abs().max())
        assert err <= tol, f"{name}: max abs difference {err:.2e}"
    for name, want in gb.items():
        got = ga[name]
        if name == "means2d":
            got, want = got[vis], want[vis]
        rel = float((got - want).norm() / want.norm().clamp_min(1e-30))
        assert rel <= grad_rtol, f"grad of {name}: relative difference {rel:.2e}"


@pytest.mark.parametrize("antialiased", [False, True])
def test_cuda_matches_cpu(antialiased):
    _needs_cuda_kernels()
    g = _scene(3000, batch=(2,), seed=1)
    cams = _rig(3, batch=(2,))
    feats = torch.randn(2, 3000, 8, generator=torch.Generator().manual_seed(1))
    bg = torch.rand(2, 3, 3)
    _compare(_run(g, cams, feats, bg, "cuda", "cuda", antialiased),
             _run(g, cams, feats, bg, "cpu", "cpu", antialiased))


def test_cuda_matches_cpu_dynamic_many_features():
    _needs_cuda_kernels()
    ts = torch.tensor([[0.0, 0.3, 0.9, 1.4]], dtype=F64)
    g = _scene(2000, batch=(1,), seed=2, sh_degree=1, dynamic=True)
    cams = _rig(4, batch=(1,), width=80, height=48, timestamps=ts)
    feats = torch.randn(1, 2000, 64, generator=torch.Generator().manual_seed(2))
    _compare(_run(g, cams, feats, torch.zeros(3), "cuda", "cuda"),
             _run(g, cams, feats, torch.zeros(3), "cpu", "cpu"))


def test_cuda_zero_gaussians_and_auto():
    _needs_cuda_kernels()
    cams = _rig(2).to("cuda")
    out = render(_scene(0).to("cuda"), cams, background=torch.ones(3, device="cuda"))
    assert torch.equal(out.rgb, torch.ones_like(out.rgb))
    g = _scene(100).to("cuda")
    assert torch.equal(render(g, cams).rgb, render(g, cams, backend="cuda").rgb)


@pytest.mark.parametrize("antialiased", [False, True])
def test_gsplat_matches_cuda_and_cpu(antialiased):
    """gsplat clamps α at 0.999 (we: 0.99): opacities ≤ 0.95 keep every α below both clamps."""
    _needs_gsplat()
    g = _scene(3000, seed=3, max_opacity=0.95)
    cams = _rig(3)
    feats = torch.randn(3000, 4, generator=torch.Generator().manual_seed(3))
    bg = torch.tensor([0.1, 0.2, 0.3])
    gs = _run(g, cams, feats, bg, "gsplat", "cuda", antialiased)
    # Radii are ceil()ed in float32 on both sides: allow a handful of marginal flags.
    _compare(gs, _run(g, cams, feats, bg, "cpu", "cpu", antialiased), max_vis_mismatch=5)
    if _cuda_reason() is None:
        _compare(gs, _run(g, cams, feats, bg, "cuda", "cuda", antialiased), max_vis_mismatch=5)
