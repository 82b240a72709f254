"""``splatnet info SCENE`` and ``splatnet export``: summaries, snapshots read back by plyfile (a
third-party reader), tracks, ``--force`` and one-line errors; ``--help`` without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import plyfile
import pytest
from scene.builders import make_scene

from splatnet.cli import main
from splatnet.scene import Scene, Track


@pytest.fixture
def scene_file(tmp_path):
    return make_scene(dynamic=True).save(tmp_path / "street.scene")


def _error(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_info_summarises_a_scene(scene_file, capsys):
    assert main(["info", str(scene_file)]) == 0
    out = capsys.readouterr().out
    assert "gaussians:   280 (background 200, actors 80)" in out
    assert "dynamic" in out and "0.000..0.400 s, 5 frame(s)" in out
    assert "front 64x48, front_left 64x48" in out and "sky:         yes" in out
    assert "car_1  car  4.00x1.80x1.50 m  60 Gaussians  0.000..0.400 s (5 track entries)" in out
    assert "ped-7  pedestrian" in out and "0.100..0.300 s (3 track entries)" in out
    assert 'metadata:    source=hand-built, model=null, note=["a", 1]' in out
    assert main(["info", str(scene_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["gaussians"] == 280 and info["frames"] == 5 and info["sky"] is True
    assert [(a["id"], a["label"], a["span"]) for a in info["actors"]] == [
        ("car_1", "car", [0.0, 0.4]), ("ped-7", "pedestrian", [0.1, 0.3])]


def test_info_on_a_broken_scene_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.scene"
    bad.write_bytes(b"\x80\x04\x95" + b"\0" * 40)
    err = _error(capsys, ["info", str(bad)])
    assert str(bad) in err and "pickle" in err


def test_export_ply_is_the_snapshot_at_that_time(scene_file, tmp_path, capsys):
    out = tmp_path / "snap.ply"
    assert main(["export", str(scene_file), "-o", str(out), "--time", "0.05"]) == 0
    msg = capsys.readouterr().out
    assert "280 Gaussians at t = 0.050 s" not in msg  # the pedestrian is not there yet
    assert "260 Gaussians at t = 0.050 s" in msg and "1 of 2 actor(s) present: car_1" in msg
    v = plyfile.PlyData.read(str(out))["vertex"].data
    expect = Scene.load(scene_file).gaussians_at(0.05).means.numpy()
    assert len(v) == 260
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], 1), expect)


def test_export_by_frame_and_as_splat(scene_file, tmp_path, capsys):
    out = tmp_path / "snap.splat"
    assert main(["export", str(scene_file), "-o", str(out), "--frame", "2"]) == 0
    assert "280 Gaussians at t = 0.200 s" in capsys.readouterr().out
    assert out.stat().st_size == 280 * 32  # 32 bytes per Gaussian
    assert main(["export", str(scene_file), "-o", str(tmp_path / "first.ply")]) == 0
    assert "at t = 0.000 s" in capsys.readouterr().out  # default: the first frame's time


def test_export_refuses_to_overwrite_without_force(scene_file, tmp_path, capsys):
    out = tmp_path / "snap.ply"
    out.write_bytes(b"keep")
    err = _error(capsys, ["export", str(scene_file), "-o", str(out)])
    assert "already exists" in err and "--force" in err and out.read_bytes() == b"keep"
    assert main(["export", str(scene_file), "-o", str(out), "--force"]) == 0
    assert out.read_bytes().startswith(b"ply\n")


@pytest.mark.parametrize("extra, match", [
    (["--time", "3"], "--time 3: outside the scene's time span 0.000..0.400 s"),
    (["--frame", "5"], "--frame 5: the scene has frames 0..4"),
])
def test_export_time_errors_are_one_line(scene_file, tmp_path, capsys, extra, match):
    assert match in _error(capsys, ["export", str(scene_file), "-o", str(tmp_path / "a.ply"), *extra])


def test_export_output_name_and_usage_errors(scene_file, tmp_path, capsys):
    err = _error(capsys, ["export", str(scene_file), "-o", str(tmp_path / "a.png")])
    assert "must end in .ply, .compressed.ply, .spz, .glb or .splat" in err
    with pytest.raises(SystemExit) as e:
        main(["export", str(scene_file), "-o", str(tmp_path / "a.ply"), "--time", "nan"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["export", str(scene_file), "-o", str(tmp_path / "a.ply"), "--time", "0", "--frame", "1"])
    assert e.value.code == 2


def test_export_a_track_for_editing(scene_file, tmp_path, capsys):
    out = tmp_path / "car.json"
    assert main(["export", str(scene_file), "--track", "car_1", "-o", str(out)]) == 0
    assert "5 entries" in capsys.readouterr().out
    track = Track.load(out, [0.0])
    ref = Scene.load(scene_file).actors["car_1"].track
    assert track.times.tobytes() == ref.times.tobytes()
    assert track.box_to_world.tobytes() == ref.box_to_world.tobytes()
    assert "no such actor" in _error(capsys, ["export", str(scene_file), "--track", "bus", "-o",
                                              str(tmp_path / "bus.json")])
    assert "must end in .json" in _error(capsys, ["export", str(scene_file), "--track", "car_1",
                                                  "-o", str(tmp_path / "car.ply")])


@pytest.mark.parametrize("command", ["export", "edit"])
def test_help_does_not_import_torch(command):
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('TORCH=' + str('torch' in sys.modules), file=sys.stderr))\n"
            f"from splatnet.cli import main; main(['{command}', '--help'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert f"usage: splatnet {command}" in out.stdout
    assert "TORCH=False" in out.stderr, out.stderr
