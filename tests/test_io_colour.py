"""Export keeps the DC colour within what 8-bit viewers show: 0.5 + C0·f_dc in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from conftest import random_gaussians

from splatnet import Gaussians
from splatnet.io.ply import property_names

C0 = 0.28209479177387814  # Y_0, written out here rather than imported: the test's own reference


def _with_dc(colours: list[list[float]], degree: int = 1) -> Gaussians:
    g = random_gaussians(len(colours), sh_degree=degree, seed=11)
    sh = g.sh.clone()
    sh[:, 0, :] = (torch.tensor(colours, dtype=torch.float64) - 0.5).div(C0).float()
    return Gaussians(g.means, g.quats, g.scales, g.opacities, sh)


COLOURS = [[1.49, 0.2, 0.7], [-0.3, 0.5, 1.0], [0.0, 0.999, 2.5], [0.3, 0.4, 0.5]]


def _read_body(path: Path, degree: int) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    names = property_names(degree)
    body = np.frombuffer(data[end:], dtype="<f4").reshape(-1, len(names))
    return {n: body[:, i] for i, n in enumerate(names)}


def test_ply_dc_colour_clamped_to_unit_range(tmp_path: Path):
    g = _with_dc(COLOURS)
    path = tmp_path / "g.ply"
    assert g.save_ply(path) == 0
    col = _read_body(path, 1)
    dc = np.stack([col[f"f_dc_{c}"] for c in range(3)], axis=1).astype(np.float64)
    viewer_rgb = 0.5 + C0 * dc
    assert np.allclose(viewer_rgb, np.clip(np.array(COLOURS), 0.0, 1.0), atol=1e-6)
    assert (viewer_rgb <= 1.0).all() and (viewer_rgb >= 0.0).all()
    # Colours already inside [0, 1] are written bit for bit; higher bands are untouched.
    assert np.array_equal(dc[3].astype(np.float32), g.sh[3, 0].numpy())
    assert np.array_equal(col["f_dc_1"][:2], g.sh[:2, 0, 1].numpy())
    for c in range(3):
        for k in range(1, 4):
            assert np.array_equal(col[f"f_rest_{c * 3 + k - 1}"], g.sh[:, k, c].numpy())


def test_ply_clamp_can_be_turned_off_for_exact_round_trip(tmp_path: Path):
    g = _with_dc(COLOURS)
    path = tmp_path / "g.ply"
    g.save_ply(path, clamp_colors=False)
    assert torch.equal(Gaussians.load_ply(path).sh, g.sh)

