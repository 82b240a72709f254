"""PlayCanvas compressed PLY: round trips within the bounds the file's own chunk ranges give (read
with plyfile, an independent PLY parser), SH degrees 0-3, empty and single files, the header
layout, and one clear error for malformed files."""

from __future__ import annotations

import numpy as np
import plyfile
import pytest
import torch
from conftest import random_gaussians

from splatnet import Gaussians
from splatnet.errors import FormatError
from splatnet.io.compressed_ply import QUANTISATION, read_compressed_ply, write_compressed_ply
from splatnet.io.ply import read_ply
from splatnet.sh import SH_C0


def _match(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """For each read Gaussian, the index of the written one nearest to it (the writer reorders)."""
    j = torch.cdist(got.double(), want.double()).argmin(1)
    assert len(set(j.tolist())) == len(want)  # a permutation
    return j


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_within_the_chunk_bounds(tmp_path, degree):
    g = random_gaussians(700, sh_degree=degree, seed=degree)  # three chunks, the last partial
    g = Gaussians(g.means, g.quats, g.scales, g.opacities, g.sh.clamp(-3.9, 3.9))
    path = tmp_path / "a.compressed.ply"
    assert write_compressed_ply(g, path, clamp_colors=False) == 0
    r = read_compressed_ply(path)
    j = _match(r["means"], g.means)
    ply = plyfile.PlyData.read(str(path))
    chunk = ply["chunk"].data
    assert len(chunk) == 3 and len(ply["vertex"].data) == 700
    which = np.arange(700) // 256

    def span(lo: str, hi: str) -> np.ndarray:
        return (chunk[hi] - chunk[lo]).astype(np.float64)[which]

    q, eps = QUANTISATION, 1e-5
    for axis, name, per in ((0, "x", "position_x_z_per_range"), (1, "y", "position_y_per_range"),
                            (2, "z", "position_x_z_per_range")):
        err = (r["means"][:, axis] - g.means[j, axis]).abs().numpy()
        assert (err <= span(f"min_{name}", f"max_{name}") * q[per] + eps).all()
        serr = (r["scales"][:, axis].log() - g.scales[j, axis].log()).abs().numpy()
        per_scale = q[per.replace("position", "log_scale")]
        assert (serr <= span(f"min_scale_{name}", f"max_scale_{name}") * per_scale + eps).all()
    for c, name in enumerate("rgb"):
        cerr = (SH_C0 * (r["sh"][:, 0, c] - g.sh[j, 0, c])).abs().numpy()
        assert (cerr <= span(f"min_{name}", f"max_{name}") * q["colour_per_range"] + eps).all()
    assert (r["opacities"] - g.opacities[j]).abs().max() <= q["opacity"] + 1e-6
    a, b = g.quats[j] / g.quats[j].norm(dim=-1, keepdim=True), r["quats"]
    qerr = torch.minimum((a - b).abs().amax(-1), (a + b).abs().amax(-1))
    assert qerr.max() <= 3 * q["rotation_component"]
    assert r["sh"].shape == g.sh.shape
    if degree:
        assert (r["sh"][:, 1:] - g.sh[j, 1:]).abs().max() <= q["sh"] + 1e-6
        # Stored channel-major, as a PLY's f_rest (the sh element read with plyfile).
        f = ply["sh"].data
        k = (degree + 1) ** 2 - 1
        byte = float(f[f"f_rest_{k}"][0])  # channel 1 (green), coefficient 1
        assert 8 * ((byte + 0.5) / 256 - 0.5) == pytest.approx(float(r["sh"][0, 1, 1]), abs=1e-6)


def test_morton_order_keeps_chunks_tight(tmp_path):
    g = random_gaussians(1024, sh_degree=0)
    g = Gaussians(torch.rand(1024, 3, generator=torch.Generator().manual_seed(0)) * 10, g.quats,
                  g.scales, g.opacities, g.sh)
    write_compressed_ply(g, tmp_path / "m.compressed.ply")
    chunk = plyfile.PlyData.read(str(tmp_path / "m.compressed.ply"))["chunk"].data
    volume = np.prod([chunk[f"max_{a}"] - chunk[f"min_{a}"] for a in "xyz"], axis=0)
    whole = np.prod((g.means.max(0).values - g.means.min(0).values).numpy())
    assert volume.mean() < 0.6 * whole  # Z-order: about a quarter of the cube each; random: ~all


def test_single_and_empty(tmp_path):
    one = random_gaussians(1, sh_degree=2)
    write_compressed_ply(one, tmp_path / "one.compressed.ply", clamp_colors=False)
    r = read_compressed_ply(tmp_path / "one.compressed.ply")
    assert torch.allclose(r["means"], one.means, atol=1e-6)  # a one-Gaussian chunk has no range
    empty = random_gaussians(0, sh_degree=1)
    write_compressed_ply(empty, tmp_path / "empty.compressed.ply")
    r = read_compressed_ply(tmp_path / "empty.compressed.ply")
    assert r["means"].shape == (0, 3) and r["sh"].shape == (0, 4, 3)


def test_the_plain_ply_reader_names_the_format(tmp_path):
    write_compressed_ply(random_gaussians(5), tmp_path / "c.ply")
    with pytest.raises(FormatError, match="compressed PLY"):
        read_ply(tmp_path / "c.ply")
    assert Gaussians.load(tmp_path / "c.ply").num_gaussians == 5


def test_malformed_files_are_one_clear_error(tmp_path):
    write_compressed_ply(random_gaussians(300, sh_degree=1), tmp_path / "ok.ply")
    data = (tmp_path / "ok.ply").read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    head, body = data[:end].decode(), data[end:]
    cases = {
        "truncated": (data[:-10], "truncated compressed PLY"),
        "longer": (data + b"\0" * 4, "longer than the header says"),
        "chunk count": (head.replace("element chunk 2", "element chunk 1").encode() + body[72:],
                        "1 chunk"),
        "vertex count": (head.replace("element vertex 300", "element vertex 200").encode() + body,
                         "each of the 200 Gaussians; it has 9 for 300"),
        "missing property": (head.replace("property uint packed_scale\n", "").encode() + body,
                             "lacks"),
        "wrong type": (head.replace("property uint packed_color", "property float packed_color")
                       .encode() + body, "uint"),
        "sh count": (head.replace("property uchar f_rest_8\n", "").encode() + body, "f_rest"),
        "ascii": (head.replace("binary_little_endian", "ascii").encode() + body, "binary_little_endian"),
        "nan bounds": (data[:end] + np.float32(np.nan).tobytes() + body[4:], "non-finite"),
    }
    for name, (blob, match) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.ply"
        path.write_bytes(blob)
        with pytest.raises(FormatError, match=match) as e:
            read_compressed_ply(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value), name


def test_reads_gsplats_ply_compressed_export(tmp_path):
    """gsplat's exporter (an independent writer, pre-activation inputs) writes this format."""
    exporter = pytest.importorskip("gsplat.exporter")
    g = random_gaussians(600, sh_degree=3, seed=1)
    logit = torch.log(g.opacities) - torch.log1p(-g.opacities)
    exporter.export_splats(g.means, g.scales.log(), g.quats, logit, g.sh[:, :1], g.sh[:, 1:],
                           format="ply_compressed", save_to=str(tmp_path / "gs.ply"))
    r = Gaussians.load(tmp_path / "gs.ply")
    j = _match(r.means, g.means)
    chunk = plyfile.PlyData.read(str(tmp_path / "gs.ply"))["chunk"].data
    which = np.arange(600) // 256
    for axis, name in enumerate("xyz"):
        span = (chunk[f"max_{name}"] - chunk[f"min_{name}"]).astype(np.float64)[which]
        err = (r.means[:, axis] - g.means[j, axis]).abs().numpy()
        assert (err <= span / 2046 + 1e-5).all()
    assert (r.opacities - g.opacities[j]).abs().max() <= 1 / 510 + 1e-6
    assert (r.sh[:, 1:] - g.sh[j, 1:].clamp(-4, 4)).abs().max() <= 1 / 32 + 1e-6
    a, b = g.quats[j] / g.quats[j].norm(dim=-1, keepdim=True), r.quats
    assert torch.minimum((a - b).abs().amax(-1), (a + b).abs().amax(-1)).max() <= 3 * np.sqrt(2) / 2046
