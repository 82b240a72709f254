"""Export keeps each DC colour within what 8-bit viewers show, 0.5 + C0·f_dc in [0, 1], by moving
over-bright colour into the opacity (premultiplied colour unchanged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from conftest import random_gaussians, simple_cameras

from splatnet import Gaussians, render
from splatnet.io.ply import property_names

C0 = 0.28209479177387814  # Y_0, written out here rather than imported: the test's own reference
ALPHA_CAP = 0.99  # docs/conventions.md: α = min(0.99, o · G)


def _with(colours: list[list[float]], opacities: list[float], degree: int = 1) -> Gaussians:
    g = random_gaussians(len(colours), sh_degree=degree, seed=11)
    sh = g.sh.clone()
    sh[:, 0, :] = (torch.tensor(colours, dtype=torch.float64) - 0.5).div(C0).float()
    return Gaussians(g.means, g.quats, g.scales, torch.tensor(opacities), sh)


# over-bright and room to compensate; below 0; over-bright beyond the α cap; inside [0, 1]
COLOURS = [[1.49, 0.2, 0.7], [-0.3, 0.5, 1.0], [0.0, 0.999, 2.5], [1.3, 1.1, 0.4],
           [0.3, 0.4, 0.5]]
OPACITIES = [0.3, 0.5, 0.2, 0.9, 0.7]


def _read_body(path: Path, degree: int) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    names = property_names(degree)
    body = np.frombuffer(data[end:], dtype="<f4").reshape(-1, len(names))
    return {n: body[:, i].astype(np.float64) for i, n in enumerate(names)}


def test_ply_dc_colour_in_unit_range_with_premultiplied_colour_kept(tmp_path: Path):
    g = _with(COLOURS, OPACITIES)
    path = tmp_path / "g.ply"
    assert g.save_ply(path) == 0
    col = _read_body(path, 1)
    viewer_rgb = 0.5 + C0 * np.stack([col[f"f_dc_{c}"] for c in range(3)], axis=1)
    opacity = 1.0 / (1.0 + np.exp(-col["opacity"]))
    # Reference: t = min(brightest channel, 0.99 / o), at least 1; colour / t, opacity · t.
    c, o = np.array(COLOURS), np.array(OPACITIES)
    t = np.maximum(np.minimum(c.max(1), ALPHA_CAP / o), 1.0)
    assert np.allclose(opacity, o * t, rtol=1e-6)
    assert np.allclose(viewer_rgb, np.clip(c / t[:, None], 0.0, 1.0), atol=1e-6)
    assert (viewer_rgb <= 1.0).all() and (viewer_rgb >= 0.0).all()
    # Where the opacity could absorb it all, colour × opacity is what it was.
    assert np.allclose(viewer_rgb[0] * opacity[0], c[0] * o[0], atol=1e-6)
    # Higher bands are divided by the same t, so the view-dependent colour scales with the DC.
    for ch in range(3):
        for k in range(1, 4):
            assert np.allclose(col[f"f_rest_{ch * 3 + k - 1}"],
                               g.sh[:, k, ch].double().numpy() / t, rtol=1e-6, atol=1e-7)
    # A Gaussian whose colour was already in range is written bit for bit.
    assert np.array_equal(viewer_rgb[4], 0.5 + C0 * g.sh[4, 0].double().numpy())


def test_clamping_viewer_shows_what_splatnet_renders(tmp_path: Path):
    # One over-bright Gaussian in front of a black background: a viewer that clamps each splat's
    # colour to [0, 1] before blending must show the exported file as splatnet shows the scene.
    cams = simple_cameras(1, width=32, height=24, radius=6.0)
    g = Gaussians(torch.zeros(1, 3), torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
                  torch.full((1, 3), 0.8), torch.tensor([0.4]),
                  ((torch.tensor([[[1.4, 0.9, 0.6]]]) - 0.5) / C0))
    path = tmp_path / "one.ply"
    g.save_ply(path)
    h = Gaussians.load_ply(path)
    clamped = ((0.5 + C0 * h.sh.double()).clamp(0, 1) - 0.5) / C0  # the viewer's 8-bit clamp
    viewer = Gaussians(h.means, h.quats, h.scales, h.opacities, clamped.float())
    ref = render(g, cams, backend="torch")
    want, got = ref.rgb, render(viewer, cams, backend="torch").rgb
    assert want.max() > 0.5  # the Gaussian is in view, brighter than colour 1 could make it
    # Equal wherever splatnet drew the Gaussian; outside, only the renderer's α < 1/255 skip
    # differs (the raised opacity crosses 1/255 on a thin rim): at most 1 × 1.4/255 there.
    drawn = ref.alpha[..., 0] > 0
    assert drawn.float().mean() > 0.05
    assert torch.allclose(got[drawn], want[drawn], rtol=0, atol=2e-6)
    assert torch.allclose(got, want, rtol=0, atol=1.4 / 255)


def test_ply_clamp_can_be_turned_off_for_exact_round_trip(tmp_path: Path):
    g = _with(COLOURS, OPACITIES)
    path = tmp_path / "g.ply"
    g.save_ply(path, clamp_colors=False)
    h = Gaussians.load_ply(path)
    assert torch.equal(h.sh, g.sh)
    assert torch.allclose(h.opacities, g.opacities, rtol=1e-6)


def test_splat_rgba_matches_the_ply_treatment(tmp_path: Path):
    g = _with(COLOURS, OPACITIES, degree=0)
    g.save_splat(tmp_path / "g.splat")
    raw = (tmp_path / "g.splat").read_bytes()
    got = sorted(tuple(raw[32 * i + 24: 32 * i + 28]) for i in range(len(COLOURS)))
    c, o = np.array(COLOURS), np.array(OPACITIES)
    t = np.maximum(np.minimum(c.max(1), ALPHA_CAP / o), 1.0)
    rgba = np.concatenate([np.clip(c / t[:, None], 0, 1), (o * t)[:, None]], axis=1) * 255
    want = sorted(tuple(int(v) for v in np.round(row)) for row in rgba)
    assert all(abs(a - b) <= 1 for ga, wa in zip(got, want) for a, b in zip(ga, wa))
