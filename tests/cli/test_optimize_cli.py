"""``splatnet optimize`` and ``optimize_clip`` on the bundled example clip: splits, files, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import REPO

import splatnet
from splatnet.cli import main
from splatnet.errors import ValidationError
from splatnet.optimization.api import default_holdout_frames, optimize, optimize_clip, split_views
from splatnet.optimization.init import init_lidar

SAMPLE = REPO / "examples" / "data" / "sample_clip"

pytestmark = [pytest.mark.skipif(not (SAMPLE / "clip.json").is_file(),
                                 reason="bundled example clip missing"),
              pytest.mark.usefixtures("one_thread")]  # conftest: many tiny kernels


@pytest.fixture(scope="module")
def clip():
    return splatnet.Clip.load(SAMPLE)


# A run small enough for a test: 1/8 of the images, a few steps, few Gaussians.
TINY = ["--iterations", "6", "--downscale", "8", "--max-gaussians", "600", "--quiet"]


def test_default_holdout_frames():
    assert default_holdout_frames(2) == []
    assert default_holdout_frames(3) == [1]
    assert default_holdout_frames(5) == [2]
    assert default_holdout_frames(8) == [4]
    assert default_holdout_frames(20) == [4, 12]


def test_split_views(clip):
    rig, targets = clip.rig_camera_names, clip.target_camera_names
    assert targets, "the sample clip has target cameras"
    s = split_views(clip)  # default: the target cameras
    assert s.train_cameras == rig and s.eval_cameras == targets and s.has_holdout
    assert s.train_frames == s.eval_frames == list(range(clip.num_frames))
    s = split_views(clip, holdout_frames=[1, -1])
    assert s.eval_frames == [1, 2] and s.train_frames == [0] and s.eval_cameras == rig
    s = split_views(clip, holdout_cameras=["cam_back"])
    assert s.eval_cameras == ["cam_back"] and "cam_back" not in s.train_cameras
    with pytest.raises(ValidationError, match="not both"):
        split_views(clip, [1], ["cam_back"])
    with pytest.raises(ValidationError, match="unknown camera"):
        split_views(clip, holdout_cameras=["nope"])
    with pytest.raises(ValidationError, match="out of range"):
        split_views(clip, holdout_frames=[7])
    with pytest.raises(ValidationError, match="no frame left"):
        split_views(clip, holdout_frames=[0, 1, 2])
    with pytest.raises(ValidationError, match="no rig camera left"):
        split_views(clip, holdout_cameras=rig)


def test_optimize_clip_end_to_end(clip):
    r = optimize_clip(clip, iterations=8, downscale=8, max_gaussians=600, holdout_frames=[1])
    assert r.split.eval_frames == [1]
    assert 0 < r.gaussians.num_gaussians <= 600 and r.num_initial <= 300
    assert r.metrics["held_out"] and r.metrics["views"] == len(clip.rig_camera_names)
    assert 5.0 < r.metrics["psnr"] < 60.0 and 0.0 < r.metrics["ssim"] <= 1.0
    assert r.gaussians.sh_degree == 3
    r.gaussians.validate()
    # the library shortcut gives the same Gaussians for the same seed
    g = optimize(clip, iterations=8, downscale=8, max_gaussians=600, holdout_frames=[1])
    assert torch.equal(g.means, r.gaussians.means)


def test_lidar_init_colours_from_images(clip):
    views = clip.views([0], size=(32, 56))
    g = init_lidar(clip, [0], views, 500, 0, torch.Generator().manual_seed(0))
    assert g.num_gaussians == 500
    # The colours come from the images: their spread is that of the image content.
    rgb = splatnet.sh.sh_to_rgb(g.sh[:, 0])
    assert rgb.std() > 0.05 and 0.05 < rgb.mean() < 0.95


def test_lidar_init_without_lidar_is_a_clear_error(clip):
    class NoLidar:
        path = Path("x")

        def lidar(self, frame):
            return None

    with pytest.raises(ValidationError, match="--init random"):
        init_lidar(NoLidar(), [0], None, 10, 0, torch.Generator())


def test_cli_writes_ply_and_metrics(tmp_path: Path, capsys):
    out, js = tmp_path / "scene.ply", tmp_path / "m.json"
    rc = main(["optimize", str(SAMPLE), "-o", str(out), "--metrics-json", str(js),
               "--init", "random", "--sh-degree", "1", *TINY])
    assert rc == 0
    text = capsys.readouterr().out
    assert "PSNR" in text and "target cameras" in text
    g = splatnet.Gaussians.load_ply(out)
    assert 0 < g.num_gaussians <= 600 and g.sh_degree == 1
    summary = json.loads(js.read_text())
    assert summary["num_gaussians"] == g.num_gaussians and summary["held_out"]
    assert summary["init"] == "random" and summary["psnr"] > 5


def test_cli_never_overwrites_without_force(tmp_path: Path, capsys):
    out = tmp_path / "scene.ply"
    out.write_bytes(b"precious")
    assert main(["optimize", str(SAMPLE), "-o", str(out), *TINY]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == b"precious"
    assert main(["optimize", str(SAMPLE), "-o", str(out), "--force", "--holdout-cameras",
                 "cam_back", *TINY]) == 0
    assert splatnet.Gaussians.load_ply(out).num_gaussians > 0


@pytest.mark.parametrize("args, message", [
    (["--iterations", "-1"], "--iterations"),
    (["--max-gaussians", "0"], "--max-gaussians"),
    (["--holdout-cameras", "nope"], "unknown camera"),
    (["--holdout-frames", "9"], "out of range"),
    (["--downscale", "0.5"], "downscale"),
    (["--threads", "0"], "--threads"),
])
def test_cli_bad_inputs_one_line(tmp_path: Path, capsys, args, message):
    out = tmp_path / "o.ply"
    rc = main(["optimize", str(SAMPLE), "-o", str(out), *TINY, *args])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_cli_bad_paths(tmp_path: Path, capsys):
    assert main(["optimize", str(tmp_path / "missing"), "-o", str(tmp_path / "o.ply"), *TINY]) == 1
    assert "no such clip" in capsys.readouterr().err
    assert main(["optimize", str(SAMPLE), "-o", str(tmp_path / "o.txt"), *TINY]) == 1
    assert ".ply" in capsys.readouterr().err
    assert main(["optimize", str(SAMPLE), "-o", str(tmp_path / "no" / "o.ply"), *TINY]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_network_init_starts_from_the_shipped_model(clip):
    """--init network: the feed-forward output, SH padded to the optimisation's degree."""
    res = optimize_clip(clip, iterations=1, init="network", downscale=8)
    assert res.num_initial > 1000 and res.gaussians.sh_degree == 3
    assert res.metrics["psnr"] > 10


def test_network_plus_lidar_init_holds_both(clip):
    """--init network+lidar: exactly the network's Gaussians followed by the LiDAR init's, and
    the network's alone for a clip without LiDAR."""
    from splatnet.optimization import init as init_mod

    both = optimize_clip(clip, iterations=0, init="network+lidar", downscale=8, max_gaussians=40000)
    net = optimize_clip(clip, iterations=0, init="network", downscale=8, max_gaussians=40000)
    lidar = optimize_clip(clip, iterations=0, init="lidar", downscale=8, max_gaussians=40000)
    assert both.num_initial == net.num_initial + lidar.num_initial
    assert torch.equal(both.gaussians.means[:net.num_initial], net.gaussians.means)
    assert torch.allclose(both.gaussians.means[net.num_initial:], lidar.gaussians.means)
    assert both.gaussians.sh_degree == 3 and both.metrics["psnr"] > 10

    class NoLidar:
        has_lidar = False

    marker = object()
    orig = init_mod.init_network
    try:
        init_mod.init_network = lambda *a, **k: marker
        assert init_mod.init_network_lidar(NoLidar(), [0], None, 10, 3, None) is marker
    finally:
        init_mod.init_network = orig


def test_quality_vs_time_benchmark_smoke(tmp_path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("qvt", REPO / "benchmarks" / "quality_vs_time.py")
    qvt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(qvt)
    rc = qvt.main(["--iterations", "0", "3", "--downscale", "8", "--max-gaussians", "600", "--no-dgp",
                   "--inits", "lidar", "network+sky", "--out", str(tmp_path)])
    assert rc == 0
    data = json.loads((tmp_path / "quality_vs_time.json").read_text())
    assert [(r["init"], r["iterations"]) for r in data["rows"]] == [
        ("lidar", 0), ("lidar", 3), ("network+sky", 0)]
    assert all(r["psnr"] > 5 for r in data["rows"])
    assert all(r["target_psnr"] is not None for r in data["rows"][:2])
    md = (tmp_path / "quality_vs_time.md").read_text()
    assert "| sample_clip |" in md and "| lidar | 3 |" in md and "feed-forward model" in md
    assert "feed-forward with its sky model" in md  # the headline line of the sky series
    assert (tmp_path / "quality_vs_time.png").stat().st_size > 1000
    assert qvt.main(["--replot", "--note", "replotted", "--out", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "quality_vs_time.json").read_text())
    assert again["rows"] == data["rows"] and again["notes"][-1] == "replotted"

    # The headline arithmetic, on rows made up by hand.
    def row(init, its, seconds, psnr):
        return {"clip": "c", "init": init, "iterations": its, "seconds": seconds, "psnr": psnr}

    rows = [row("lidar", 0, 1.0, 10.0), row("lidar", 100, 11.0, 20.0), row("lidar", 300, 31.0, 24.0),
            row("network", 0, 0.5, 15.0), row("network", 50, 5.5, 17.0)]
    c = qvt.crossover(rows, "c")
    assert c["bound"] == "about" and c["between"] == [0, 100]
    assert c["optimisation_seconds"] == pytest.approx(6.0) and c["ratio"] == pytest.approx(12.0)
    assert c["refinement"][0]["db_per_second"] == pytest.approx(2.0 / 5.0)
    rows[3] = row("network", 0, 0.5, 30.0)  # never reached: a lower bound at the last row
    c = qvt.crossover(rows, "c")
    assert c["bound"] == "more than" and c["ratio"] == pytest.approx(62.0)
    assert qvt.crossover(rows, "c", "network+sky") is None


def test_optimisation_of_a_synthetic_clip_beats_a_fixed_bar(tmp_path: Path):
    from splatnet.clip.synth import generate

    path = generate(tmp_path / "clip", 7, cameras=3, frames=3, size=(64, 112))
    start = optimize_clip(path, iterations=0, max_gaussians=8000)
    r = optimize_clip(path, iterations=200, max_gaussians=8000)
    assert r.split.description == "held-out frames [1]" and r.metrics["held_out"]
    # Measured on synthetic seeds 3, 7, 11: 14.4-16.2 dB at the start, 24.9-25.4 dB after 200 steps.
    assert start.metrics["psnr"] < 18.0
    assert r.metrics["psnr"] > 22.5, r.metrics
    assert r.metrics["ssim"] > 0.7
