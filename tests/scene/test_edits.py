"""Edits change only the actor they name: every other group and the background stay bit-identical,
and the original scene is never mutated."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scene.builders import FRAME_TIMES, gaussians, make_scene

from splatnet.clip.actors import yaw_pose
from splatnet.errors import ValidationError
from splatnet.scene import SceneActor, Track

TIMES = (0.0, 0.15, 0.2, 0.3)


def _groups(scene, t: float) -> dict[str, torch.Tensor]:
    """Each group's world Gaussians at t, by id ("background" too), all fields stacked."""
    world = scene.gaussians_at(t)
    out, start = {}, 0
    for key, n in [("background", scene.background.num_gaussians)] + [
            (a.id, a.gaussians.num_gaussians) for a in scene.actors.values()
            if a.pose_at(t) is not None]:
        part = world[start:start + n]
        out[key] = torch.cat([part.means, part.quats, part.scales, part.opacities[:, None],
                              part.sh.flatten(1)], 1)
        start += n
    assert start == world.num_gaussians
    return out


def _assert_unchanged_except(before, after, changed: set[str]) -> None:
    for t in TIMES:
        a, b = _groups(before, t), _groups(after, t)
        for key in set(a) | set(b):
            if key in changed:
                continue
            assert key in a and key in b, (key, t)
            assert torch.equal(a[key], b[key]), (key, t)


def _snapshot(scene) -> dict:
    return {a.id: (a.track.box_to_world.copy(), a.gaussians.means.clone())
            for a in scene.actors.values()}


def _assert_same_as(scene, snap: dict) -> None:
    assert list(scene.actors) == list(snap)
    for aid, (poses, means) in snap.items():
        assert np.array_equal(scene.actors[aid].track.box_to_world, poses)
        assert torch.equal(scene.actors[aid].gaussians.means, means)


def test_remove_takes_only_that_actor_away():
    scene = make_scene(dynamic=True)
    snap = _snapshot(scene)
    out = scene.remove("ped-7")
    assert list(out.actors) == ["car_1"]
    assert out.gaussians_at(0.2).num_gaussians == 200 + 60
    _assert_unchanged_except(scene, out, {"ped-7"})
    assert out.background is scene.background and out.actors["car_1"] is scene.actors["car_1"]
    _assert_same_as(scene, snap)
    assert list(scene.remove(["ped-7", "car_1"]).actors) == []
    with pytest.raises(ValidationError,
                       match=r"remove: no actor 'bus' in the scene \(actors: car_1, ped-7\)"):
        scene.remove(["ped-7", "bus"])


def test_move_shifts_the_group_in_the_world_and_turns_it_about_its_box_up_axis():
    scene = make_scene()
    snap = _snapshot(scene)
    out = scene.move("car_1", 1.0, -2.0, math.radians(30))
    _assert_unchanged_except(scene, out, {"car_1"})
    _assert_same_as(scene, snap)
    # Plain NumPy: at t = 0.2 the car's pose is yaw_pose(10, 0.5, 0.8, 0.2); moved, every point p
    # of its box goes to R (Rz(30°) p) + c + (1, -2, 0).
    pose = yaw_pose(10.0, 0.5, 0.8, 0.2)
    turn = yaw_pose(0, 0, 0, math.radians(30))[:3, :3]
    p = scene.actors["car_1"].gaussians.means.double().numpy()
    expect = (p @ turn.T) @ pose[:3, :3].T + pose[:3, 3] + [1.0, -2.0, 0.0]
    got = _groups(out, 0.2)["car_1"][:, :3].double().numpy()
    np.testing.assert_allclose(got, expect, atol=2e-6)
    with pytest.raises(ValidationError, match="move: no actor"):
        scene.move("nobody", 1, 0, 0)


def test_set_track_puts_the_actor_on_a_new_track_only():
    scene = make_scene()
    new = Track(np.array([0.05, 0.35]), np.stack([yaw_pose(20, -3, 0.9, 0), yaw_pose(23, -3, 0.9, 0)]))
    out = scene.set_track("ped-7", new)
    _assert_unchanged_except(scene, out, {"ped-7"})
    assert out.actors["ped-7"].span == (0.05, 0.35)
    assert "ped-7" not in _groups(out, 0.0) and "ped-7" in _groups(out, 0.35)
    p = scene.actors["ped-7"].gaussians.means.double().numpy()
    np.testing.assert_allclose(_groups(out, 0.2)["ped-7"][:, :3].double().numpy(),
                               p + [21.5, -3.0, 0.9], atol=2e-6)
    with pytest.raises(ValidationError, match="expected a splatnet.scene.Track"):
        scene.set_track("ped-7", new.box_to_world)


def test_insert_adds_an_actor_of_another_scene_on_a_track():
    scene = make_scene().remove("ped-7")
    other = make_scene(sh_degree=1)
    ped = other.actors["ped-7"]
    track = Track(FRAME_TIMES[:2].copy(), np.stack([yaw_pose(12, 0, 0.9, 0), yaw_pose(12, -1, 0.9, 0)]))
    out = scene.insert(ped, track, new_id="ped-2")
    assert list(out.actors) == ["car_1", "ped-2"]
    _assert_unchanged_except(scene, out, {"ped-2"})
    got = out.actors["ped-2"]
    assert got.gaussians is ped.gaussians and got.label == "pedestrian" and got.track is track
    np.testing.assert_allclose(_groups(out, 0.0)["ped-2"][:, :3].double().numpy(),
                               ped.gaussians.means.double().numpy() + [12, 0, 0.9], atol=2e-6)
    assert "ped-2" not in _groups(out, 0.2)
    with pytest.raises(ValidationError, match="'car_1' is already in the scene"):
        scene.insert(other.actors["car_1"], track)
    with pytest.raises(ValidationError, match="id must be"):
        scene.insert(ped, track, new_id="a:b")


def test_an_edited_actor_keeps_its_own_gaussians_untouched():
    scene = make_scene()
    out = scene.move("car_1", 3.0, 0.0, 0.0).set_track(
        "ped-7", Track(np.array([0.0]), yaw_pose(0, 0, 0, 0)[None]))
    for aid in ("car_1", "ped-7"):
        assert out.actors[aid].gaussians is scene.actors[aid].gaussians


def test_an_inserted_actor_must_be_a_scene_actor():
    scene = make_scene()
    with pytest.raises(ValidationError, match="SceneActor"):
        scene.insert(gaussians(3, 0), scene.actors["car_1"].track)
    with pytest.raises(ValidationError, match="track"):
        scene.insert(SceneActor("z", "", (1, 1, 1), scene.actors["car_1"].track, gaussians(3, 0)),
                     None)
