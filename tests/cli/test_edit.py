"""``splatnet edit``: remove, move (offsets or TRACK.json) and insert, each changing only its actor;
``--force`` and same-file rules; one-line errors for bad tracks and ids."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scene.builders import make_scene

from splatnet.cli import main
from splatnet.clip.actors import yaw_pose
from splatnet.scene import Scene


@pytest.fixture
def scene_file(tmp_path):
    return make_scene().save(tmp_path / "street.scene")


def _error(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _same_group(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.fields().values(), b.fields().values(), strict=True))


def test_remove(scene_file, tmp_path, capsys):
    out = tmp_path / "out.scene"
    assert main(["edit", str(scene_file), "-o", str(out), "--remove", "ped-7"]) == 0
    assert "removed ped-7" in capsys.readouterr().out
    before, after = Scene.load(scene_file), Scene.load(out)
    assert list(after.actors) == ["car_1"]
    assert _same_group(before.background, after.background)
    car0, car1 = before.actors["car_1"], after.actors["car_1"]
    assert _same_group(car0.gaussians, car1.gaussians)
    assert car0.track.box_to_world.tobytes() == car1.track.box_to_world.tobytes()


def test_move_by_offsets_in_degrees(scene_file, tmp_path, capsys):
    out = tmp_path / "out.scene"
    assert main(["edit", str(scene_file), "-o", str(out), "--move", "car_1:1.5,-2,90"]) == 0
    assert "moved car_1 by (1.5 m, -2 m, 90 deg)" in capsys.readouterr().out
    before, after = Scene.load(scene_file), Scene.load(out)
    for i in range(5):  # NumPy: shifted in the world, turned a quarter about the box's up axis
        T = before.actors["car_1"].track.box_to_world[i]
        expect = T.copy()
        expect[:3, :3] = T[:3, :3] @ yaw_pose(0, 0, 0, math.pi / 2)[:3, :3]
        expect[:3, 3] += [1.5, -2.0, 0.0]
        np.testing.assert_allclose(after.actors["car_1"].track.box_to_world[i], expect, atol=1e-12)
    ped0, ped1 = before.actors["ped-7"], after.actors["ped-7"]
    assert ped0.track.box_to_world.tobytes() == ped1.track.box_to_world.tobytes()
    assert _same_group(before.background, after.background)


def test_move_onto_a_track_file_by_frames(scene_file, tmp_path, capsys):
    track = tmp_path / "TRACK.json"
    track.write_text(json.dumps([{"frame": 0, "box_to_world": yaw_pose(5, 0, 0.9, 0).tolist()},
                                 {"frame": 4, "box_to_world": yaw_pose(9, 0, 0.9, 0).tolist()}]))
    out = tmp_path / "out.scene"
    assert main(["edit", str(scene_file), "-o", str(out), "--move", f"ped-7:{track}"]) == 0
    ped = Scene.load(out).actors["ped-7"]
    assert ped.track.times.tolist() == [0.0, 0.4]
    np.testing.assert_allclose(ped.pose_at(0.2)[:3, 3], [7.0, 0.0, 0.9], atol=1e-12)


def test_insert_from_another_scene(scene_file, tmp_path, capsys):
    other = make_scene(sh_degree=1).save(tmp_path / "other.scene")
    track = tmp_path / "T.json"
    track.write_text(json.dumps([{"t": 0.1, "box_to_world": yaw_pose(6, -2, 0.9, 0).tolist()},
                                 {"t": 0.3, "box_to_world": yaw_pose(6, 2, 0.9, 0).tolist()}]))
    out = tmp_path / "out.scene"
    assert main(["edit", str(scene_file), "-o", str(out), "--insert", f"{other}:ped-7", "--track",
                 str(track), "--new-id", "ped-8"]) == 0
    assert f"inserted ped-7 from {other} as ped-8" in capsys.readouterr().out
    after, src = Scene.load(out), Scene.load(other)
    assert list(after.actors) == ["car_1", "ped-7", "ped-8"]
    assert _same_group(after.actors["ped-8"].gaussians, src.actors["ped-7"].gaussians)
    assert after.actors["ped-8"].span == (0.1, 0.3)
    # Without --new-id the id clashes: one line.
    err = _error(capsys, ["edit", str(scene_file), "-o", str(tmp_path / "x.scene"), "--insert",
                          f"{other}:ped-7", "--track", str(track)])
    assert "'ped-7' is already in the scene" in err and "--new-id" in err
    err = _error(capsys, ["edit", str(scene_file), "-o", str(tmp_path / "x.scene"), "--insert",
                          f"{other}:bus", "--track", str(track)])
    assert "no such actor" in err
    assert "--track TRACK.json" in _error(capsys, ["edit", str(scene_file), "-o",
                                                   str(tmp_path / "x.scene"), "--insert", f"{other}:ped-7"])


def test_several_edits_in_one_call(scene_file, tmp_path, capsys):
    out = tmp_path / "out.scene"
    assert main(["edit", str(scene_file), "-o", str(out), "--remove", "ped-7", "--move",
                 "car_1:1,0,0", "--move", "car_1:0,1,0"]) == 0
    after = Scene.load(out)
    np.testing.assert_allclose(after.actors["car_1"].track.box_to_world[0][:3, 3], [9.0, 1.5, 0.8])


def test_output_rules_and_force(scene_file, tmp_path, capsys):
    original = scene_file.read_bytes()
    err = _error(capsys, ["edit", str(scene_file), "-o", str(scene_file), "--remove", "ped-7"])
    assert "is the input scene itself" in err and "--force" in err
    assert scene_file.read_bytes() == original
    out = tmp_path / "out.scene"
    out.write_bytes(b"keep")
    assert "already exists" in _error(capsys, ["edit", str(scene_file), "-o", str(out), "--remove",
                                               "ped-7"])
    assert out.read_bytes() == b"keep"
    assert main(["edit", str(scene_file), "-o", str(out), "--remove", "ped-7", "--force"]) == 0
    assert main(["edit", str(scene_file), "-o", str(scene_file), "--remove", "car_1", "--force"]) == 0
    assert list(Scene.load(scene_file).actors) == ["ped-7"]
    assert "must be a .scene" in _error(capsys, ["edit", str(out), "-o", str(tmp_path / "o.ply"),
                                                 "--remove", "ped-7"])
    assert "nothing to do" in _error(capsys, ["edit", str(out), "-o", str(tmp_path / "o.scene")])


@pytest.mark.parametrize("entries, match", [
    ([{"t": 0.0, "box_to_world": [[float("nan"), 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}],
     "NaN"),
    ([{"t": 0.0, "box_to_world": [[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}],
     "not rigid"),
    ([{"t": 0.3, "box_to_world": np.eye(4).tolist()}, {"t": 0.1, "box_to_world": np.eye(4).tolist()}],
     "strictly increasing"),
])
def test_a_bad_track_file_is_one_line(scene_file, tmp_path, capsys, entries, match):
    track = tmp_path / "TRACK.json"
    track.write_text(json.dumps(entries))
    out = tmp_path / "out.scene"
    err = _error(capsys, ["edit", str(scene_file), "-o", str(out), "--move", f"car_1:{track}"])
    assert str(track) in err and match in err
    assert not out.exists()


def test_bad_ids_and_specs(scene_file, tmp_path, capsys):
    out = str(tmp_path / "out.scene")
    assert "remove: no actor 'bus'" in _error(capsys, ["edit", str(scene_file), "-o", out,
                                                       "--remove", "bus"])
    assert "move: no actor 'bus'" in _error(capsys, ["edit", str(scene_file), "-o", out,
                                                     "--move", "bus:1,2,3"])
    for spec in ("car_1", "car_1:1,2", "car_1:1,2,inf", ":1,2,3"):
        with pytest.raises(SystemExit) as e:
            main(["edit", str(scene_file), "-o", out, "--move", spec])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and "--move" in err, err
    assert "--track and --new-id go with --insert" in _error(
        capsys, ["edit", str(scene_file), "-o", out, "--remove", "car_1", "--new-id", "x"])
