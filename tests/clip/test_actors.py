"""Actor tracks: the ``Actor`` type, its rules, interpolation, and the clip.json round trip."""

import json
import math

import numpy as np
import pytest

from splatnet.clip import Actor, CameraSpec, Clip, FrameSpec, write_clip
from splatnet.clip.actors import box_corners, interpolate_pose, points_in_box, yaw_pose
from splatnet.errors import FormatError, ValidationError


def _clip(tmp_path, actors, ego_x=(0.0, 1.0, 2.0), name="c"):
    K = [[50.0, 0, 16], [0, 50.0, 12], [0, 0, 1]]
    cams = [CameraSpec("front", K, 32, 24, np.eye(4))]
    frames = [FrameSpec(0.1 * i, yaw_pose(x, 5.0, 0.0, 0.0)) for i, x in enumerate(ego_x)]
    img = np.zeros((24, 32, 3), np.uint8)
    images = {(i, "front"): img for i in range(len(frames))}
    return write_clip(tmp_path / name, cams, frames, images, actors=actors)


def _car(aid="car_1", frames=(0, 1, 2), x0=10.0, dx=1.5, moving=True):
    poses = np.stack([yaw_pose(x0 + dx * i, 5.0, 0.8, 0.1 * i) for i in range(len(frames))])
    return Actor(aid, "car", (4.5, 1.9, 1.6), np.asarray(frames), poses,
                 np.full(len(frames), moving) if moving is not None else None)


def test_round_trip_in_the_clip_world_frame(tmp_path):
    a, b = _car(), _car("ped 7", frames=(1, 2), moving=None)
    path = _clip(tmp_path, [a, b])
    m = json.loads((path / "clip.json").read_text())
    assert m["version"] == 1.1 and len(m["actors"]) == 2
    clip = Clip.load(path)
    assert [x.id for x in clip.actors] == ["car_1", "ped 7"]
    got = clip.actors[0]
    # the loader re-expresses poses relative to the first ego pose (x=0, y=5): same as ego poses
    first = np.linalg.inv(yaw_pose(0.0, 5.0, 0.0, 0.0))
    np.testing.assert_allclose(got.box_to_world, first @ a.box_to_world, atol=1e-12)
    assert got.size == a.size and got.label == "car" and got.moving.tolist() == [True] * 3
    assert clip.actors[1].moving is None and clip.actors[1].frames.tolist() == [1, 2]


def test_clip_without_actors_stays_version_1(tmp_path):
    path = _clip(tmp_path, None)
    assert json.loads((path / "clip.json").read_text())["version"] == 1
    assert Clip.load(path).actors == []


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(version=1), "needs clip format version 1.1"),
    (lambda m: m["actors"][0].update(size=[4, -1, 1]), "size"),
    (lambda m: m["actors"][0]["track"][0].update(frame=7), "frame index in 0..2"),
    (lambda m: m["actors"][0]["track"][1].update(frame=0), "strictly increasing"),
    (lambda m: m["actors"][0]["track"][0]["box_to_world"][0].__setitem__(0, 2.0), "not rigid"),
    (lambda m: m["actors"][0]["track"][0]["box_to_world"][0].__setitem__(3, float("nan")), "NaN"),
    (lambda m: m["actors"][0]["track"][0].update(moving="yes"), "moving"),
    (lambda m: m["actors"][0]["track"][0].pop("moving"), "every entry or none"),
    (lambda m: m["actors"].append(m["actors"][0]), "used twice"),
    (lambda m: m["actors"][0].update(speed=3), "unknown field"),
    (lambda m: m.update(version=1.2), "upgrade splatnet"),
])
def test_bad_actor_entries_are_one_clear_error(tmp_path, edit, message):
    path = _clip(tmp_path, [_car()])
    mp = path / "clip.json"
    m = json.loads(mp.read_text())
    edit(m)
    mp.write_text(json.dumps(m))
    with pytest.raises((ValidationError, FormatError), match=message) as e:
        Clip.load(path)
    assert "\n" not in str(e.value)


def test_constructor_rules():
    with pytest.raises(ValidationError, match="id"):
        _car(aid="a,b")
    with pytest.raises(ValidationError, match="float64"):
        Actor("x", "car", (1, 1, 1), np.array([0]), np.eye(4, dtype=np.float32)[None])
    with pytest.raises(ValidationError, match="out of range"):
        write_clip("/nonexistent/never", [CameraSpec("f", [[8, 0, 4], [0, 8, 4], [0, 0, 1]], 8, 8,
                                                      np.eye(4))],
                   [FrameSpec(0.0, np.eye(4))], {(0, "f"): np.zeros((8, 8, 3), np.uint8)},
                   actors=[_car(frames=(0, 1), moving=None)])


def test_pose_at_interpolates_and_is_absent_outside_the_span():
    a = _car(frames=(1, 3), moving=None)
    times = [0.0, 0.1, 0.2, 0.3]
    assert a.pose_at(0.05, times) is None and a.pose_at(0.31, times) is None
    np.testing.assert_array_equal(a.pose_at(0.1, times), a.box_to_world[0])
    np.testing.assert_array_equal(a.pose_at(0.3, times), a.box_to_world[1])
    mid = a.pose_at(0.2, times)
    np.testing.assert_allclose(mid[:3, 3], (a.box_to_world[0, :3, 3] + a.box_to_world[1, :3, 3]) / 2)
    # slerp of two yaws about +z is the mean yaw
    np.testing.assert_allclose(mid[:3, :3], yaw_pose(0, 0, 0, 0.05)[:3, :3], atol=1e-12)


def test_interpolate_pose_takes_the_short_way_round():
    a, b = yaw_pose(0, 0, 0, math.radians(170)), yaw_pose(0, 0, 0, math.radians(-170))
    np.testing.assert_allclose(interpolate_pose(a, b, 0.5)[:3, :3],
                               yaw_pose(0, 0, 0, math.pi)[:3, :3], atol=1e-9)


def test_box_geometry():
    T = yaw_pose(10, 0, 1, math.pi / 2)  # length along world +y
    c = box_corners((4.0, 2.0, 1.0), T)
    np.testing.assert_allclose(c.min(0), [9, -2, 0.5])
    np.testing.assert_allclose(c.max(0), [11, 2, 1.5])
    pts = np.array([[10, 1.9, 1], [10.9, 0, 1], [11.1, 0, 1], [10, 2.1, 1]])
    assert points_in_box(pts, (4.0, 2.0, 1.0), T).tolist() == [True, True, False, False]


def test_box_distance_is_checked_in_the_clip_world_frame(tmp_path):
    """Absolute map coordinates are fine when the ego is there too (first_ego re-centres them);
    a box 2000 km from the first ego pose is one clear error."""
    far = 5e6
    ego = [far, far + 1.0, far + 2.0]
    near = Actor("car", "car", (4, 2, 1.5), np.array([0, 1]),
                 np.stack([yaw_pose(far + 10, 5, 0, 0), yaw_pose(far + 11, 5, 0, 0)]))
    clip = Clip.load(_clip(tmp_path, [near], ego_x=ego, name="abs"))
    np.testing.assert_allclose(clip.actors[0].box_to_world[0][:3, 3], [10, 0, 0], atol=1e-6)
    lost = Actor("lost", "car", (4, 2, 1.5), np.array([0]), yaw_pose(far + 2e6, 5, 0, 0)[None])
    with pytest.raises(ValidationError, match="lost"):
        _clip(tmp_path, [lost], ego_x=ego, name="lost")
    path = _clip(tmp_path, [near], ego_x=ego, name="edited")
    m = json.loads((path / "clip.json").read_text())
    m["actors"][0]["track"][0]["box_to_world"][0][3] = far + 3e6
    (path / "clip.json").write_text(json.dumps(m))
    with pytest.raises(ValidationError, match=r"actors\[0\] \('car'\).track\[0\]"):
        Clip.load(path)
