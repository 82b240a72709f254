"""The CUDA ops (csrc/cuda/, kernels + host glue) run in the CPU emulator vs the CPU ops.

The CPU ops are tested against the pure-torch reference and gsplat in tests/; here the CUDA code
must agree with them. Run: ``.venv/bin/python -m pytest .ci/cuda_emu/test_emu.py -q`` (first
build ≈ 3 min on 2 cores). What the emulator does not cover is listed in shim/emu_runtime.h.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import splatnet._C  # noqa: E402, F401  (CPU ops: torch.ops.splatnet.*)

OPS = torch.ops.splatnet


@pytest.fixture(scope="module")
def emu():
    return build.load()


def _scene(B, C, N, sh_degree, seed, W=70, H=45):
    """Gaussians around the origin seen by C cameras on a circle, with some behind / off-screen."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(B, N, 3, generator=g) * torch.tensor([2.0, 1.2, 2.0])
    quats = torch.randn(B, N, 4, generator=g)
    scales = torch.exp(torch.randn(B, N, 3, generator=g) * 0.6 - 2.0)
    opac = torch.rand(B, N, generator=g) * 0.98 + 0.01
    K_sh = (sh_degree + 1) ** 2
    sh = torch.randn(B, N, K_sh, 3, generator=g) * 0.4
    viewmats = torch.zeros(B, C, 4, 4)
    for b in range(B):
        for c in range(C):
            a = 2 * math.pi * (c + 0.3 * b) / max(C, 1)
            eye = torch.tensor([4.0 * math.sin(a), 0.3, -4.0 * math.cos(a)])
            fwd = -eye / eye.norm()
            right = torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0]), fwd)
            right = right / right.norm()
            down = torch.linalg.cross(fwd, right)
            R = torch.stack([right, down, fwd])  # rows: camera axes in world
            viewmats[b, c, :3, :3] = R
            viewmats[b, c, :3, 3] = -R @ eye
            viewmats[b, c, 3, 3] = 1.0
    Ks = torch.tensor([[60.0, 0, W / 2 + 1.3], [0, 58.0, H / 2 - 0.7], [0, 0, 1]]).expand(B, C, 3, 3)
    return means, quats, scales, opac, sh, viewmats.contiguous(), Ks.contiguous(), W, H


def _close(a, b, rtol, atol, what):
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    err = (a - b).abs()
    tol = atol + rtol * b.abs()
    bad = err > tol
    assert not bad.any(), (
        f"{what}: {int(bad.sum())}/{bad.numel()} elements off, max abs err {err.max():.3g}"
    )


@pytest.mark.parametrize("sh_degree,antialiased", [(0, False), (1, True), (2, False), (3, True)])
def test_project_forward_backward(emu, sh_degree, antialiased):
    means, quats, scales, opac, sh, vm, Ks, W, H = _scene(2, 3, 400, sh_degree, seed=sh_degree)
    args = (means, quats, scales, opac, sh, vm, Ks, W, H, sh_degree, 0.01, 1e10, antialiased)
    cpu = OPS.project_forward(*args)
    gpu = emu.project_forward(*args)
    names = ["means2d", "conics", "depths", "radii", "opac", "colors"]
    assert int((cpu[3] > 0).all(-1).sum()) > 200, "scene too empty to test anything"
    for name, a, b in zip(names, gpu, cpu):
        if name == "radii":
            assert torch.equal(a, b), "radii differ"
        else:
            # Different FMA contraction (the CPU op is built with -march=native): scale atol.
            _close(a, b, 1e-5, 1e-5 * float(b.abs().max()), name)

    g = torch.Generator().manual_seed(7)
    grads = [torch.randn(t.shape, generator=g) for t in (cpu[0], cpu[1], cpu[2], cpu[4], cpu[5])]
    bargs = (means, quats, scales, opac, sh, vm, Ks, W, H, sh_degree, antialiased, cpu[3], *grads)
    gc = OPS.project_backward(*bargs)
    ge = emu.project_backward(*bargs)
    for name, a, b in zip(["means", "quats", "scales", "opacities", "sh"], ge, gc):
        _close(a, b, 1e-4, 1e-4 * float(b.abs().max()), f"v_{name}")


def _projected(B, C, N, seed, W=70, H=45, dense=False):
    means, quats, scales, opac, sh, vm, Ks, W, H = _scene(B, C, N, 1, seed, W, H)
    if dense:  # large, nearly opaque Gaussians: long lists and pixels that stop early
        scales = scales * 3.0
        opac = 0.6 + 0.39 * opac
    m2d, con, dep, rad, op, col = OPS.project_forward(
        means, quats, scales, opac, sh, vm, Ks, W, H, 1, 0.01, 1e10, False
    )
    return m2d, con, dep, rad, op, col, W, H


@pytest.mark.parametrize(
    "Ch,tile_size,B,C,N,dense",
    [(4, 16, 2, 3, 250, False), (0, 16, 1, 2, 250, False), (1, 8, 1, 2, 250, False),
     (3, 16, 2, 1, 250, False), (5, 16, 1, 2, 250, False), (8, 8, 1, 1, 250, False),
     (9, 16, 1, 2, 250, False), (20, 16, 2, 1, 250, False), (4, 16, 1, 2, 1500, True),
     (17, 8, 1, 1, 600, True)],
)
def test_rasterize_forward_backward(emu, Ch, tile_size, B, C, N, dense):
    m2d, con, dep, rad, op, col, W, H = _projected(B, C, N, seed=Ch + tile_size, dense=dense)
    g = torch.Generator().manual_seed(Ch)
    values = torch.cat([col, dep[..., None], torch.randn(B, C, N, max(Ch - 4, 0), generator=g)], -1)
    values = values[..., :Ch].contiguous()
    args = (m2d, con, values, op, dep, rad, W, H, tile_size)
    cpu = OPS.rasterize_forward(*args)
    gpu = emu.rasterize_forward(*args)
    image, alpha, offsets, ids, last, T = gpu
    assert float(cpu[1].max()) > 0.9, "scene too sparse to test anything"
    if dense:  # lists longer than two batches, and pixels that stopped before their list's end
        longest = int((cpu[2][1:] - cpu[2][:-1]).max())
        assert longest > 2 * tile_size**2, f"longest tile list {longest}"
        assert float(cpu[5].min()) < 1e-3
    # Binning and sorting are exact integer logic: identical lists.
    assert torch.equal(offsets, cpu[2]), "tile_offsets differ"
    assert torch.equal(ids, cpu[3]), "flat_ids (per-tile depth order) differ"
    # α uses std::exp here and a polynomial exp on the CPU: a contributor exactly at the 1/255 or
    # 1e-4 threshold may flip, so allow a handful of pixels to differ in their last contributor.
    frac = (last != cpu[4]).float().mean().item()
    assert frac < 2e-3, f"last_ids differ at {frac:.2%} of pixels"
    same = (last == cpu[4])
    _close(image[same], cpu[0][same], 1e-4, 1e-5, "image")
    _close(alpha[same], cpu[1][same], 1e-4, 1e-5, "alpha")
    _close(T[same], cpu[5][same], 1e-4, 1e-6, "final_T")

    gv = torch.Generator().manual_seed(3)
    v_image = torch.randn(image.shape, generator=gv)
    v_alpha = torch.randn(alpha.shape, generator=gv)
    saved = cpu[2:]  # the same saved lists for both, so the gradients are comparable
    bargs = (m2d, con, values, op, rad, W, H, tile_size, *saved, v_image, v_alpha)
    gc = OPS.rasterize_backward(*bargs)
    ge = emu.rasterize_backward(*bargs)
    for name, a, b in zip(["means2d", "conics", "values", "opac"], ge, gc):
        if b.numel() == 0:
            continue
        _close(a, b, 1e-3, 2e-4 * float(b.abs().max()), f"v_{name}")


def test_rasterize_empty_and_culled(emu):
    m2d, con, dep, rad, op, col, W, H = _projected(1, 2, 0, seed=1)
    values = torch.zeros(1, 2, 0, 4)
    image, alpha, offsets, ids, last, T = emu.rasterize_forward(
        m2d, con, values, op, dep, rad, W, H, 16
    )
    assert image.shape == (1, 2, H, W, 4) and float(image.abs().max()) == 0.0
    assert float(alpha.abs().max()) == 0.0 and float((T - 1).abs().max()) == 0.0
    assert ids.numel() == 0 and int(offsets.abs().max()) == 0 and int(last.abs().max()) == 0
    # All culled (radii 0): no intersections, but the images are still written.
    m2d, con, dep, rad, op, col, W, H = _projected(1, 1, 50, seed=2)
    values = torch.cat([col, dep[..., None]], -1)
    out = emu.rasterize_forward(m2d, con, values, op, dep, torch.zeros_like(rad), W, H, 16)
    assert out[3].numel() == 0 and float(out[0].abs().max()) == 0.0
    g = emu.rasterize_backward(m2d, con, values, op, rad, W, H, 16, *out[2:],
                               torch.ones_like(out[0]), torch.ones_like(out[1]))
    assert all(float(t.abs().max()) == 0.0 for t in g)


def test_validation_messages(emu):
    m2d, con, dep, rad, op, col, W, H = _projected(1, 1, 20, seed=3)
    values = torch.cat([col, dep[..., None]], -1)
    bad = m2d.clone()
    bad[0, 0, 3, 1] = float("nan")
    with pytest.raises(RuntimeError, match="'means2d' contains a non-finite"):
        emu.rasterize_forward(bad, con, values, op, dep, rad, W, H, 16)
    for name, idx in (("values", 2), ("depths", 4)):
        args = [m2d, con, values, op, dep]
        args[idx] = args[idx].clone()
        args[idx].view(-1)[-1] = float("inf")
        with pytest.raises(RuntimeError, match=f"'{name}' contains a non-finite"):
            emu.rasterize_forward(*args, rad, W, H, 16)
    with pytest.raises(RuntimeError, match="tile_size 8 or 16"):
        emu.rasterize_forward(m2d, con, values, op, dep, rad, W, H, 32)
    with pytest.raises(RuntimeError, match="'conics' must have shape"):
        emu.rasterize_forward(m2d, con[..., :2].contiguous(), values, op, dep, rad, W, H, 16)
    means, quats, scales, opac, sh, vm, Ks, W, H = _scene(1, 1, 10, 0, seed=4)
    quats[0, 2, 0] = float("inf")
    with pytest.raises(RuntimeError, match="'quats' contains a non-finite"):
        emu.project_forward(means, quats, scales, opac, sh, vm, Ks, W, H, 0, 0.01, 1e10, False)
