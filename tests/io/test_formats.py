"""The format table: output formats from extensions or a name, input formats from content (an
extension can lie), Gaussians.save/load through every format, and the PLY size used for ratios."""

from __future__ import annotations

import pytest
import torch
from conftest import random_gaussians

from splatnet import Gaussians
from splatnet.errors import FormatError, ValidationError
from splatnet.io.formats import input_format, output_format, ply_size


@pytest.mark.parametrize("name, fmt", [("a.ply", "ply"), ("a.compressed.ply", "compressed-ply"),
                                       ("A.SPZ", "spz"), ("a.glb", "glb"), ("a.splat", "splat")])
def test_output_format_from_the_extension(name, fmt):
    assert output_format(name) == fmt


def test_output_format_errors():
    assert output_format("a.ply", "compressed-ply") == "compressed-ply"
    with pytest.raises(ValidationError, match="must end in .spz"):
        output_format("a.ply", "spz")
    with pytest.raises(ValidationError, match="must end in .ply, .compressed.ply, .spz, .glb, .splat"):
        output_format("a.png")
    with pytest.raises(ValidationError, match="expected one of"):
        output_format("a.ply", "obj")


def test_input_format_from_content(tmp_path):
    g = random_gaussians(20, sh_degree=1)
    for name, fmt in (("x.ply", "ply"), ("y.compressed.ply", "compressed-ply"), ("z.spz", "spz"),
                      ("w.glb", "glb")):
        g.save(tmp_path / name)
        lying = tmp_path / f"lying_{fmt}.bin"
        lying.write_bytes((tmp_path / name).read_bytes())
        assert input_format(tmp_path / name) == fmt and input_format(lying) == fmt
        back = Gaussians.load(lying)
        assert back.num_gaussians == 20 and back.sh_degree == 1
    g.save(tmp_path / "v.splat")
    with pytest.raises(FormatError, match="does not read them"):
        Gaussians.load(tmp_path / "v.splat")
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(FormatError, match="not a splat file"):
        Gaussians.load(tmp_path / "t.txt")


@pytest.mark.parametrize("degree", [0, 3])
def test_ply_size_is_the_size_of_splatnets_ply(tmp_path, degree):
    g = random_gaussians(33, sh_degree=degree)
    g.save(tmp_path / "a.ply")
    assert ply_size(33, degree) == (tmp_path / "a.ply").stat().st_size


def test_save_options(tmp_path):
    g = random_gaussians(5)
    with pytest.raises(ValidationError, match="only for SPZ"):
        g.save(tmp_path / "a.ply", spz_version=3)
    g.save(tmp_path / "a.spz", spz_version=3)
    assert (tmp_path / "a.spz").read_bytes()[:2] == b"\x1f\x8b"  # version 3 is one gzip stream
    bright = Gaussians(g.means, g.quats, g.scales, torch.full((5,), 0.2), torch.full((5, 16, 3), 3.0))
    bright.save(tmp_path / "b.glb")  # DC colour fitted into [0, 1] by default, as for PLY
    assert (0.5 + 0.28209479177387814 * Gaussians.load(tmp_path / "b.glb").sh[:, 0]).max() <= 1 + 1e-6
    bright.save(tmp_path / "c.glb", clamp_colors=False)
    assert torch.equal(Gaussians.load(tmp_path / "c.glb").sh, bright.sh)
