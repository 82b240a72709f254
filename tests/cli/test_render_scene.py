"""``splatnet render SCENE.scene``: replay along the log, a trajectory file, a shift, a lane change
or a speed change; RGB PNGs checked against renders of cameras written out here, depth PNGs read
back as clips store them, LiDAR sweeps, the index, the MP4, ``--force`` and one-line errors."""

from __future__ import annotations

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from scene.builders import HEIGHT, WIDTH, make_scene

import splatnet
from splatnet import Cameras
from splatnet.cli import main
from splatnet.clip.actors import yaw_pose
from splatnet.scene import Scene


@pytest.fixture
def scene_file(tmp_path):
    return make_scene(sky=False).save(tmp_path / "street.scene")


def _error(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _render(scene: Scene, pose: np.ndarray, t: float, camera: str, h: int, w: int):
    """The scene at time t from a rig camera on an ego at ``pose``, written out independently."""
    cam = scene.rig.camera(camera)
    K = np.diag([w / cam.width, h / cam.height, 1.0]) @ cam.K
    cams = Cameras(torch.tensor(K[None]).float(), torch.tensor((pose @ cam.cam_to_ego)[None]).float(),
                   w, h)
    return splatnet.render(scene.gaussians_at(t), cams)


def test_replaying_the_log_writes_images_depths_lidar_and_an_index(scene_file, tmp_path, capsys):
    out = tmp_path / "replay"
    argv = ["render", str(scene_file), "-o", str(out), "--cameras", "front", "--size", "24x32",
            "--depth", "--lidar", "--lidar-beams", "4", "--lidar-azimuths", "16", "--quiet"]
    assert main(argv) == 0
    assert "5 frame(s) x 1 camera(s)" in capsys.readouterr().out
    scene = Scene.load(scene_file)
    index = json.loads((out / "index.json").read_text())
    assert index["format"] == "splatnet-replay" and index["trajectory"] == {"source": "log"}
    assert index["cameras"][0]["name"] == "front" and index["cameras"][0]["width"] == 32
    assert [f["t"] for f in index["frames"]] == scene.frame_times.tolist()
    for f, entry in enumerate(index["frames"]):
        np.testing.assert_array_equal(entry["ego_to_world"], scene.ego_to_world[f])
        want = _render(scene, scene.ego_to_world[f], float(scene.frame_times[f]), "front", 24, 32)
        rgb = iio.imread(out / entry["images"]["front"])
        assert rgb.shape == (24, 32, 3) and rgb.dtype == np.uint8
        ref = np.clip(want.rgb[0].numpy() * 255 + 0.5, 0, 255).astype(np.uint8)
        assert np.abs(rgb.astype(int) - ref).max() <= 1
        # Depth as clips store it: 16-bit, 1/256 m a unit, 0 where alpha < 0.5.
        stored = iio.imread(out / entry["depths"]["front"])
        assert stored.dtype == np.uint16 and entry["depths"]["front"].endswith(".png")
        d = np.where(want.alpha[0, ..., 0].numpy() >= 0.5, want.depth[0, ..., 0].numpy(), 0.0)
        assert np.abs(stored / 256.0 - d).max() <= 1 / 512 + 1e-4 and (stored > 0).any()
        pts = np.load(out / entry["lidar"])
        assert pts.dtype == np.float32 and pts.ndim == 2 and pts.shape[1] == 3
        assert entry["lidar_points"] == len(pts) and len(pts) > 0
    assert index["lidar"]["frame"] == "ego" and len(index["lidar"]["elevations_deg"]) == 4
    # No overwrite without --force; with it the directory is replaced.
    err = _error(capsys, argv)
    assert str(out) in err and "--force" in err
    assert main(argv[:-7] + ["--quiet", "--force"]) == 0
    assert not (out / "lidar").exists() and not (out / "depths").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".replay.")]


def test_a_speed_change_moves_the_ego_along_its_path_and_keeps_the_actors_log_time(scene_file, tmp_path):
    out = tmp_path / "fast"
    assert main(["render", str(scene_file), "-o", str(out), "--speed", "2", "--fps", "20",
                 "--cameras", "front", "--size", "24x32", "--quiet"]) == 0
    scene = Scene.load(scene_file)
    index = json.loads((out / "index.json").read_text())
    assert index["trajectory"] == {"source": "speed", "factor": 2.0, "rate": 20.0}
    assert [f["t"] for f in index["frames"]] == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    for i, entry in enumerate(index["frames"]):
        # The ego is where the log had it at 2 t (frame i, 0.1 s apart); the car is at t.
        np.testing.assert_array_equal(entry["ego_to_world"], scene.ego_to_world[i])
        want = _render(scene, scene.ego_to_world[i], entry["t"], "front", 24, 32)
        rgb = iio.imread(out / entry["images"]["front"])
        ref = np.clip(want.rgb[0].numpy() * 255 + 0.5, 0, 255).astype(np.uint8)
        assert np.abs(rgb.astype(int) - ref).max() <= 1


def test_a_trajectory_file_and_a_lateral_shift(scene_file, tmp_path):
    traj = tmp_path / "path.json"
    poses = [{"t": t, "ego_to_world": yaw_pose(1.0 + 5 * t, 0.5, 0.0, 0.3 * t).tolist()}
             for t in (0.05, 0.15, 0.35)]
    traj.write_text(json.dumps({"poses": poses}))
    out = tmp_path / "file"
    assert main(["render", str(scene_file), "-o", str(out), "--trajectory", str(traj),
                 "--size", "24x32", "--depth", "--depth-format", "npy", "--quiet"]) == 0
    scene = Scene.load(scene_file)
    index = json.loads((out / "index.json").read_text())
    assert [f["t"] for f in index["frames"]] == [0.05, 0.15, 0.35]
    assert sorted(index["frames"][0]["images"]) == ["front", "front_left"]
    entry = index["frames"][1]
    want = _render(scene, np.array(poses[1]["ego_to_world"]), 0.15, "front_left", 24, 32)
    depth = np.load(out / entry["depths"]["front_left"])
    assert depth.dtype == np.float32 and depth.shape == (24, 32)
    d = np.where(want.alpha[0, ..., 0].numpy() >= 0.5, want.depth[0, ..., 0].numpy(), 0.0)
    np.testing.assert_allclose(depth, d, atol=1e-4)
    out2 = tmp_path / "shift"
    assert main(["render", str(scene_file), "-o", str(out2), "--shift-lateral", "-1.5",
                 "--frames", "1:3", "--quiet"]) == 0
    index = json.loads((out2 / "index.json").read_text())
    assert [f["index"] for f in index["frames"]] == [1, 2]
    for entry in index["frames"]:
        pose = scene.ego_to_world[entry["index"]]
        np.testing.assert_allclose(np.array(entry["ego_to_world"])[:3, 3],
                                   pose[:3, 3] - 1.5 * pose[:3, 1], atol=1e-12)
        assert iio.imread(out2 / entry["images"]["front"]).shape == (HEIGHT, WIDTH, 3)


def test_a_lane_change_to_an_mp4(scene_file, tmp_path, capsys):
    pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "lane.mp4"
    argv = ["render", str(scene_file), "-o", str(out), "--lane-change=-3:0.1:0.3", "--size", "24x32",
            "--quiet"]
    assert main(argv) == 0
    assert out.stat().st_size > 0
    index = json.loads((tmp_path / "lane.json").read_text())
    assert index["video"] == "lane.mp4" and len(index["frames"]) == 5
    scene = Scene.load(scene_file)
    for i, entry in enumerate(index["frames"]):
        pose = scene.ego_to_world[i]
        shift = -3.0 * (1 - math.cos(math.pi * min(max((entry["t"] - 0.1) / 0.2, 0.0), 1.0))) / 2
        np.testing.assert_allclose(np.array(entry["ego_to_world"])[:3, 3], pose[:3, 3] + shift * pose[:3, 1],
                                   atol=1e-12)
    import imageio.v2 as imageio

    with imageio.get_reader(out) as reader:  # ffmpeg decodes it: 5 frames, 2 cameras x [RGB | depth]
        frames = [f for f in reader]
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3)
    err = _error(capsys, argv)
    assert str(out) in err and "--force" in err
    assert main(argv + ["--force"]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lane.")]


@pytest.mark.parametrize(("extra", "code", "expect"), [
    (["--trajectory", "{missing}"], 1, "file not found"),
    (["--lane-change", "3:2:1"], 2, "T1 (1 s) must be after T0 (2 s)"),
    (["--lane-change", "3:1"], 2, "expected D:T0:T1"),
    (["--speed", "-1"], 2, "expected a number from 0 to 100"),
    (["--speed", "1", "--shift-lateral", "2"], 2, "not allowed with argument"),
    (["--lidar", "--lidar-fov", "20,-10"], 2, "expected -90 <= LOW <= HIGH <= 90"),
    (["--clip", "somewhere"], 1, "--clip: only for a PLY input"),
    (["--lidar-beams", "8"], 1, "--lidar-beams: sets up the simulated LiDAR; add --lidar"),
    (["--depth-format", "npy"], 1, "add --depth"),
    (["--cameras", "back"], 1, "--cameras: no camera 'back'"),
    (["--frames", "7:9"], 1, "--frames: selects none of the trajectory's 5 pose(s)"),
])
def test_bad_options_are_one_line(scene_file, tmp_path, capsys, extra, code, expect):
    extra = [e.replace("{missing}", str(tmp_path / "nope.json")) for e in extra]
    argv = ["render", str(scene_file), "-o", str(tmp_path / "out"), *extra]
    if code == 2:  # argparse's usage errors
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    else:
        assert main(argv) == 1
    err = capsys.readouterr().err
    assert expect in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_a_bad_trajectory_file_names_the_file_and_pose(scene_file, tmp_path, capsys):
    traj = tmp_path / "bad.json"
    traj.write_text(json.dumps({"poses": [
        {"t": 0.0, "ego_to_world": np.eye(4).tolist()},
        {"t": 0.1, "ego_to_world": [[1, 0, 0, float("nan")], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}]}))
    err = _error(capsys, ["render", str(scene_file), "-o", str(tmp_path / "o"), "--trajectory", str(traj)])
    assert str(traj) in err and "poses[1].ego_to_world" in err and "NaN" in err
    late = tmp_path / "late.json"
    late.write_text(json.dumps({"poses": [{"t": 0.2, "ego_to_world": np.eye(4).tolist()},
                                          {"t": 0.9, "ego_to_world": np.eye(4).tolist()}]}))
    err = _error(capsys, ["render", str(scene_file), "-o", str(tmp_path / "o"), "--trajectory", str(late)])
    assert f"--trajectory {late}" in err and "pose 1 at t = 0.9 s is outside the scene's time span" in err
    assert not (tmp_path / "o").exists()


def test_scene_options_with_a_ply_and_outputs_that_cannot_hold_files(scene_file, tmp_path, capsys):
    ply = tmp_path / "g.ply"
    make_scene().to_gaussians(0.0).save_ply(ply)
    err = _error(capsys, ["render", str(ply), "-o", str(tmp_path / "o"), "--speed", "2"])
    assert "--speed: only for a .scene input" in err
    err = _error(capsys, ["render", str(ply), "-o", str(tmp_path / "o")])
    assert "--clip: required" in err
    err = _error(capsys, ["render", str(scene_file), "-o", str(tmp_path / "v.mp4"), "--lidar"])
    assert "--lidar: writes files per frame; give -o a directory" in err
