"""``splatnet export`` between splat formats and from scenes (one time, sequences of times, the sky
baked in), and ``splatnet info`` on every format: outputs read back, one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import random_gaussians
from scene.builders import make_scene

from splatnet import Gaussians, render
from splatnet.cli import main
from splatnet.metrics import psnr
from splatnet.scene import Scene
from splatnet.scene.sky_bake import sky_shell

pytest.importorskip("zstandard")


@pytest.fixture
def ply(tmp_path):
    g = random_gaussians(300, sh_degree=2)
    g.save(tmp_path / "in.ply")
    return tmp_path / "in.ply"


@pytest.fixture
def scene_file(tmp_path):
    return make_scene(dynamic=True).save(tmp_path / "street.scene")


def _error(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_convert_between_every_format(ply, tmp_path, capsys):
    ref = Gaussians.load(ply)
    for name in ("a.spz", "a.compressed.ply", "a.glb", "b.ply"):
        assert main(["export", str(ply), "-o", str(tmp_path / name)]) == 0
        assert f"wrote 300 Gaussians (SH degree 2) from {ply}" in capsys.readouterr().out
        back = Gaussians.load(tmp_path / name)
        assert back.num_gaussians == 300 and back.sh_degree == 2
    # and from a delivery format onwards (the input's format is read from its content)
    assert main(["export", str(tmp_path / "a.glb"), "-o", str(tmp_path / "c.spz")]) == 0
    assert torch.allclose(Gaussians.load(tmp_path / "c.spz").means, ref.means, atol=2e-4)
    assert main(["export", str(ply), "-o", str(tmp_path / "d.ply"), "--format", "compressed-ply"]) == 0
    assert b"element chunk" in (tmp_path / "d.ply").read_bytes()[:200]


def test_info_on_every_format(ply, tmp_path, capsys):
    for name in ("a.spz", "a.compressed.ply", "a.glb"):
        main(["export", str(ply), "-o", str(tmp_path / name)])
    capsys.readouterr()
    sizes = {}
    for name, fmt in (("in.ply", "ply"), ("a.spz", "spz"), ("a.compressed.ply", "compressed-ply"),
                      ("a.glb", "glb")):
        assert main(["info", str(tmp_path / name), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["format"] == fmt and info["count"] == 300 and info["sh_degree"] == 2
        assert info["size_bytes"] == (tmp_path / name).stat().st_size
        assert info["ply_size_bytes"] == ply.stat().st_size
        sizes[fmt] = info["compression_ratio"]
    assert sizes["ply"] == 1.0 and sizes["spz"] > 4 and sizes["compressed-ply"] > 2
    assert main(["info", str(tmp_path / "a.spz")]) == 0
    out = capsys.readouterr().out
    assert "format:      spz" in out and "splatnet's PLY of these Gaussians" in out


def test_scene_snapshot_in_every_format(scene_file, tmp_path, capsys):
    want = Scene.load(scene_file).gaussians_at(0.2)
    for name in ("s.spz", "s.glb", "s.compressed.ply"):
        assert main(["export", str(scene_file), "-o", str(tmp_path / name), "--frame", "2"]) == 0
        assert "280 Gaussians at t = 0.200 s" in capsys.readouterr().out
        assert Gaussians.load(tmp_path / name).num_gaussians == want.num_gaussians


def test_sequence_with_index(scene_file, tmp_path, capsys):
    out = tmp_path / "seq"
    assert main(["export", str(scene_file), "-o", str(out), "--times", "0:0.4:0.1",
                 "--format", "spz"]) == 0
    assert "wrote 5 spz snapshot(s)" in capsys.readouterr().out
    index = json.loads((out / "index.json").read_text())
    assert [f["t"] for f in index["frames"]] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    scene = Scene.load(scene_file)
    for f in index["frames"]:
        g = Gaussians.load(out / f["file"])
        expect = scene.gaussians_at(f["t"])
        assert g.num_gaussians == f["gaussians"] == expect.num_gaussians
        assert torch.allclose(g.means, expect.means, atol=2e-4)
    err = _error(capsys, ["export", str(scene_file), "-o", str(out), "--times", "0:0.4:0.1"])
    assert "not empty" in err and "--force" in err
    err = _error(capsys, ["export", str(scene_file), "-o", str(tmp_path / "s2"), "--times", "0:1:0.5"])
    assert "outside the scene's time span" in err


def test_bake_sky(scene_file, tmp_path, capsys):
    assert main(["export", str(scene_file), "-o", str(tmp_path / "sky.ply"), "--bake-sky"]) == 0
    msg = capsys.readouterr().out
    assert "sky shell" in msg
    g = Gaussians.load(tmp_path / "sky.ply")
    scene = Scene.load(scene_file)
    assert g.num_gaussians == scene.gaussians_at(0.0).num_gaussians + sky_shell(scene).num_gaussians
    no_sky = make_scene(sky=False).save(tmp_path / "nosky.scene")
    assert "no sky model" in _error(capsys, ["export", str(no_sky), "-o", str(tmp_path / "n.ply"),
                                             "--bake-sky"])


@torch.no_grad()
def test_baked_sky_reproduces_splatnets_render_with_its_sky():
    """From the rig's viewpoints at every frame: the snapshot plus the shell, rendered on black,
    against the scene rendered with its sky model (rgb + (1 - alpha) sky)."""
    scene = make_scene()
    shell = sky_shell(scene, sh_degree=2, spacing_deg=2.0)
    alone, baked = [], []
    for frame in range(scene.num_frames):
        cams = scene.frame_cameras(frame)
        ref = scene.render(cams).rgb.clamp(0, 1)
        t = float(scene.frame_times[frame])
        out = render(Gaussians.cat([scene.gaussians_at(t), shell]), cams).rgb.clamp(0, 1)
        plain = render(scene.gaussians_at(t), cams).rgb.clamp(0, 1)
        baked.append(float(psnr(out, ref).mean()))
        alone.append(float(psnr(plain, ref).mean()))
    # The hand-built scene leaves most pixels to the sky: without the shell they are black.
    assert max(alone) < 15
    assert min(baked) > 35, baked


def test_errors_are_one_line(ply, scene_file, tmp_path, capsys):
    err = _error(capsys, ["export", str(ply), "-o", str(tmp_path / "a.spz"), "--time", "1"])
    assert "--time: only for a .scene input" in err
    err = _error(capsys, ["export", str(ply), "-o", str(tmp_path / "a.ply"), "--spz-version", "3"])
    assert "--spz-version: only for SPZ output" in err
    err = _error(capsys, ["export", str(ply), "-o", str(tmp_path / "a.ply"), "--format", "glb"])
    assert "must end in .glb" in err
    (tmp_path / "bad.spz").write_bytes(b"NGSP" + bytes(10))
    err = _error(capsys, ["export", str(tmp_path / "bad.spz"), "-o", str(tmp_path / "x.ply")])
    assert "bad.spz: truncated SPZ" in err
    err = _error(capsys, ["info", str(tmp_path / "bad.spz")])
    assert "bad.spz: truncated SPZ" in err
    (tmp_path / "a.glb").write_bytes(b"keep")
    err = _error(capsys, ["export", str(ply), "-o", str(tmp_path / "a.glb")])
    assert "already exists" in err and (tmp_path / "a.glb").read_bytes() == b"keep"
    err = _error(capsys, ["export", str(scene_file), "-o", str(tmp_path / "o.spz"), "--track", "car_1"])
    assert "must end in .json" in err
