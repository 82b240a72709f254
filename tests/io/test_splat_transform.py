"""An independent reader and writer: PlayCanvas's splat-transform (npm ``@playcanvas/splat-transform``;
its SPZ goes through Niantic's own SPZ library compiled to WebAssembly). It converts splatnet's SPZ
and compressed PLY to PLY, which must match splatnet's PLY within each format's bound; and it writes
SPZ, compressed PLY and glb from splatnet's PLY, which splatnet's readers must read back to the
same Gaussians. Skipped cleanly without Node.js or the package: install it with
``npm install --prefix tests/.node @playcanvas/splat-transform`` (git-ignored), or put
``splat-transform`` on PATH, or name it in ``SPLAT_TRANSFORM``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import REPO, random_gaussians

from splatnet import Gaussians
from splatnet.io import compressed_ply, spz


def _tool() -> str | None:
    if shutil.which("node") is None:
        return None
    for candidate in (os.environ.get("SPLAT_TRANSFORM"), shutil.which("splat-transform"),
                      str(REPO / "tests" / ".node" / "node_modules" / ".bin" / "splat-transform")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


TOOL = _tool()
pytestmark = pytest.mark.skipif(TOOL is None, reason="splat-transform (npm) or Node.js not installed")


def _convert(src: Path, dst: Path) -> None:
    out = subprocess.run([TOOL, "-q", "-w", str(src), str(dst)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and dst.exists(), out.stderr[-2000:]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Gaussians inside SPZ's ranges, and splatnet's lossless PLY of them."""
    g = random_gaussians(400, sh_degree=3, seed=3)
    g = Gaussians(g.means, g.quats, g.scales.clamp(1e-3, 50), g.opacities, g.sh.clamp(-0.95, 0.95))
    d = tmp_path_factory.mktemp("st")
    g.save(d / "ref.ply", clamp_colors=False)
    return Gaussians.load(d / "ref.ply"), d


def _close(a: Gaussians, b: Gaussians, *, means, opacity, log_scale, dc, sh, cov) -> None:
    from splatnet.gaussians import quat_to_rotmat

    def covariance(g):
        r = quat_to_rotmat(g.quats.double())
        return r @ torch.diag_embed(g.scales.double() ** 2) @ r.transpose(-1, -2)

    assert a.num_gaussians == b.num_gaussians and a.sh_degree == b.sh_degree
    assert (a.means - b.means).abs().max() <= means
    assert (a.opacities - b.opacities).abs().max() <= opacity
    assert (a.scales.log() - b.scales.log()).abs().max() <= log_scale
    assert (a.sh[:, 0] - b.sh[:, 0]).abs().max() <= dc
    assert (a.sh[:, 1:] - b.sh[:, 1:]).abs().max() <= sh
    rel = (covariance(a) - covariance(b)).abs().amax((1, 2)) / covariance(b).abs().amax((1, 2))
    assert rel.max() <= cov


SPZ = dict(means=spz.QUANTISATION["position_m"] + 1e-6, opacity=spz.QUANTISATION["opacity"] + 1e-6,
           log_scale=spz.QUANTISATION["log_scale"] + 1e-5, dc=spz.QUANTISATION["f_dc"] + 1e-5,
           sh=spz.QUANTISATION["sh_degree2_3"] + 1e-5, cov=0.1)


@pytest.mark.parametrize("version", [3, 4])
def test_splat_transform_reads_our_spz(source, version):
    g, d = source
    g.save(d / f"ours{version}.spz", clamp_colors=False, spz_version=version)
    _convert(d / f"ours{version}.spz", d / f"theirs_from_spz{version}.ply")
    _close(Gaussians.load(d / f"theirs_from_spz{version}.ply"), g, **SPZ)


def test_we_read_splat_transforms_spz(source):
    g, d = source
    _convert(d / "ref.ply", d / "theirs.spz")
    _close(Gaussians.load(d / "theirs.spz"), g, **SPZ)


def _by_position(a: Gaussians, b: Gaussians) -> Gaussians:
    """``a`` reordered to ``b``'s order (compressed PLY writers sort Gaussians spatially)."""
    j = torch.cdist(b.means.double(), a.means.double()).argmin(1)
    assert len(set(j.tolist())) == a.num_gaussians
    return a[j]


def test_compressed_ply_both_ways(source):
    g, d = source
    g.save(d / "ours.compressed.ply", clamp_colors=False)
    _convert(d / "ours.compressed.ply", d / "theirs_from_cply.ply")
    theirs = Gaussians.load(d / "theirs_from_cply.ply")
    ours = Gaussians.load(d / "ours.compressed.ply")
    # splat-transform decodes our file to exactly what our reader gives (same order: file order).
    assert torch.allclose(theirs.means, ours.means, atol=1e-6)
    assert torch.allclose(theirs.sh, ours.sh, atol=1e-5)
    assert torch.allclose(theirs.opacities, ours.opacities, atol=1e-5)
    _convert(d / "ref.ply", d / "theirs.compressed.ply")
    got = _by_position(Gaussians.load(d / "theirs.compressed.ply"), g)
    ext = (g.means.max(0).values - g.means.min(0).values).max()
    bound = float(ext) * compressed_ply.QUANTISATION["position_y_per_range"] + 1e-5
    _close(got, g, means=bound, opacity=1 / 510 + 1e-6, log_scale=0.01, dc=0.03,
           sh=compressed_ply.QUANTISATION["sh"] + 1e-6, cov=0.05)


def test_we_read_splat_transforms_glb(source):
    """splat-transform converts PLY to glTF axes itself: reading its glb must give our PLY back."""
    g, d = source
    _convert(d / "ref.ply", d / "theirs.glb")
    _close(Gaussians.load(d / "theirs.glb"), g, means=1e-6, opacity=1e-6, log_scale=1e-6, dc=1e-6,
           sh=1e-6, cov=1e-5)
