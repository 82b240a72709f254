"""Ego trajectories: the trajectory file and its errors, the log reproducing the scene's own rig
cameras, lateral shifts, lane changes and speed changes (against plain NumPy geometry written
here), and replays that draw the actors at the cameras' (log) time."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scene.builders import FRAME_TIMES, HEIGHT, WIDTH, make_scene

import splatnet
from splatnet import Cameras
from splatnet.clip.actors import yaw_pose
from splatnet.errors import FormatError, ValidationError
from splatnet.scene import EgoTrajectory, replay, rig_cameras


def _turning(n: int = 9, dt: float = 0.25) -> EgoTrajectory:
    """The ego on a left curve of radius 20 m, speeding up (arc length 0.5 i² m at step i)."""
    poses = []
    for i in range(n):
        s = 0.5 * i * i
        a = s / 20.0
        poses.append(yaw_pose(20.0 * math.sin(a), 20.0 * (1 - math.cos(a)), 0.3, a))
    return EgoTrajectory(dt * np.arange(n), np.stack(poses))


# ---------------------------------------------------------------------------------------- files
def _write(tmp_path, obj, name="traj.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def _pose(x=0.0):
    return [[1, 0, 0, x], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]


def test_a_trajectory_file_round_trips(tmp_path):
    traj = _turning()
    path = traj.save(tmp_path / "t.json")
    back = EgoTrajectory.load(path)
    np.testing.assert_array_equal(back.times, traj.times)
    np.testing.assert_array_equal(back.ego_to_world, traj.ego_to_world)
    with pytest.raises(FileExistsError, match="force"):
        traj.save(path)
    doc = json.loads(path.read_text())
    assert list(doc) == ["poses"] and list(doc["poses"][0]) == ["t", "ego_to_world"]


@pytest.mark.parametrize(("poses", "expect"), [
    ([{"t": 0.0, "ego_to_world": _pose()}, {"t": 0.1, "ego_to_world": _pose(float("nan"))}],
     r"poses\[1\]\.ego_to_world: matrix contains NaN"),
    ([{"t": 0.0, "ego_to_world": _pose()},
      {"t": 0.1, "ego_to_world": [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}],
     r"poses\[1\]\.ego_to_world: pose is not rigid"),
    ([{"t": 0.2, "ego_to_world": _pose()}, {"t": 0.1, "ego_to_world": _pose(1)}],
     r"poses\[1\]\.t: 0\.1 s is not after poses\[0\]\.t = 0\.2 s; times must be strictly increasing"),
    ([{"t": 0.1, "ego_to_world": _pose()}, {"t": 0.1, "ego_to_world": _pose(1)}],
     r"poses\[1\]\.t: 0\.1 s is not after"),
    ([{"t": float("nan"), "ego_to_world": _pose()}], r"poses\[0\]\.t: must be a finite number"),
    ([], r'"poses" is empty'),
    ([{"t": 0.0}], r'poses\[0\]: missing "ego_to_world"'),
    ([{"t": 0.0, "ego_to_world": _pose(), "speed": 3}], r"poses\[0\]: unknown key 'speed'"),
    ([{"t": 0.0, "ego_to_world": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}],
     r"poses\[0\]\.ego_to_world: expected a 4x4 matrix"),
])
def test_a_bad_trajectory_file_is_one_error_naming_the_file_and_pose(tmp_path, poses, expect):
    path = _write(tmp_path, {"poses": poses})
    with pytest.raises(FormatError, match=expect) as info:
        EgoTrajectory.load(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and "\n" not in msg


@pytest.mark.parametrize(("text", "expect"), [
    ("{not json", "not valid JSON"),
    ("[]", "expected a JSON object"),
    ('{"poses": [], "extra": 1}', "unknown key 'extra'"),
    ('{"frames": []}', "unknown key 'frames'"),
    ("{}", '"poses" must be a list'),
])
def test_a_malformed_trajectory_file_is_one_error(tmp_path, text, expect):
    path = _write(tmp_path, text)
    with pytest.raises(FormatError, match=expect) as info:
        EgoTrajectory.load(path)
    assert str(info.value).startswith(str(path))


def test_a_trajectory_checks_its_arrays():
    with pytest.raises(ValidationError, match="strictly increasing"):
        EgoTrajectory(np.array([0.0, 0.0]), np.stack([np.eye(4)] * 2))
    with pytest.raises(ValidationError, match=r"expected \[2, 4, 4\]"):
        EgoTrajectory(np.array([0.0, 1.0]), np.eye(4)[None])
    with pytest.raises(ValidationError, match="outside its span"):
        _turning().pose_at(5.0)


# ---------------------------------------------------------------------------------------- the log
def test_the_log_trajectory_reproduces_the_scenes_rig_cameras_exactly():
    scene = make_scene()
    traj = EgoTrajectory.from_scene(scene)
    assert len(traj) == scene.num_frames
    for f in range(scene.num_frames):
        mine = traj.cameras(scene.rig, float(scene.frame_times[f]))
        ref = scene.frame_cameras(f)
        assert torch.equal(mine.K, ref.K) and torch.equal(mine.cam_to_world, ref.cam_to_world)
        assert torch.equal(mine.timestamps, ref.timestamps) and mine.names == ref.names
        assert (mine.width, mine.height) == (ref.width, ref.height)


def test_interpolation_between_keyframes_is_lerp_and_slerp():
    traj = _turning()
    t = 0.25 * 3 + 0.1  # 40 % of the way from keyframe 3 to 4
    a, b = traj.ego_to_world[3], traj.ego_to_world[4]
    yaw_a, yaw_b = math.atan2(a[1, 0], a[0, 0]), math.atan2(b[1, 0], b[0, 0])
    want = yaw_pose(*(0.6 * a[:3, 3] + 0.4 * b[:3, 3]), 0.6 * yaw_a + 0.4 * yaw_b)
    np.testing.assert_allclose(traj.pose_at(t), want, atol=1e-12)
    np.testing.assert_array_equal(traj.pose_at(0.75), traj.ego_to_world[3])


def test_rig_cameras_at_another_size_scale_the_intrinsics():
    scene = make_scene()
    pose = yaw_pose(3.0, -1.0, 0.2, 0.7)
    cams = rig_cameras(scene.rig, pose, 0.25, ["front_left"], size=(24, 48))
    K = scene.rig.camera("front_left").K
    want = np.array([[K[0, 0] * 48 / WIDTH, 0, K[0, 2] * 48 / WIDTH],
                     [0, K[1, 1] * 24 / HEIGHT, K[1, 2] * 24 / HEIGHT], [0, 0, 1]])
    np.testing.assert_allclose(cams.K[0].double().numpy(), want, rtol=1e-7)
    assert (cams.width, cams.height) == (48, 24) and cams.names == ["front_left"]
    np.testing.assert_allclose(cams.cam_to_world[0].double().numpy(),
                               pose @ scene.rig.camera("front_left").cam_to_ego, atol=1e-6)
    assert cams.timestamps.tolist() == [0.25]
    with pytest.raises(ValidationError, match="unknown camera 'back'"):
        rig_cameras(scene.rig, pose, 0.0, ["back"])


# ---------------------------------------------------------------------------------------- new paths
def test_a_lateral_shift_moves_every_camera_centre_along_the_egos_left_axis():
    scene = make_scene()
    traj = _turning()
    d = -2.75
    moved = traj.shifted_lateral(d)
    np.testing.assert_array_equal(moved.times, traj.times)
    for i, t in enumerate(traj.times):
        left = traj.ego_to_world[i][:3, 1]
        assert abs(left[1]) > 0.0  # the ego is turning: left is not the world's y for i > 0
        before, after = traj.cameras(scene.rig, t), moved.cameras(scene.rig, t)
        for c in range(len(scene.rig.cameras)):
            mount = scene.rig.cameras[c].cam_to_ego
            centre = (traj.ego_to_world[i] @ mount)[:3, 3]
            np.testing.assert_allclose((moved.ego_to_world[i] @ mount)[:3, 3], centre + d * left,
                                       atol=1e-12, rtol=0)
            np.testing.assert_allclose(after.cam_to_world[c, :3, 3].double().numpy(),
                                       before.cam_to_world[c, :3, 3].double().numpy() + d * left,
                                       atol=5e-6, rtol=0)
        assert torch.equal(after.cam_to_world[:, :3, :3], before.cam_to_world[:, :3, :3])


def test_a_lane_change_is_zero_before_t0_the_full_distance_after_t1_and_monotone_between():
    traj = _turning().resampled(np.linspace(0.0, 2.0, 81))
    d, t0, t1 = 3.5, 0.6125, 1.3875  # between samples (0.025 s apart); halfway at 1.0
    lc = traj.lane_change(d, t0, t1)
    delta = lc.ego_to_world[:, :3, 3] - traj.ego_to_world[:, :3, 3]
    left = traj.ego_to_world[:, :3, 1]
    offset = np.einsum("ij,ij->i", delta, left)
    # Only sideways, along the ego's own left axis, orientation kept.
    np.testing.assert_allclose(delta - offset[:, None] * left, 0.0, atol=1e-12)
    np.testing.assert_array_equal(lc.ego_to_world[:, :3, :3], traj.ego_to_world[:, :3, :3])
    before, after, between = traj.times <= t0, traj.times >= t1, (traj.times > t0) & (traj.times < t1)
    np.testing.assert_allclose(offset[before], 0.0, atol=1e-12)
    np.testing.assert_allclose(offset[after], d, atol=1e-12)
    assert np.all(np.diff(offset[between]) > 0) and np.all((offset[between] > 0) & (offset[between] < d))
    # Halfway in time is halfway across; the cosine ramp starts and ends without a lateral jump.
    np.testing.assert_allclose(lc.pose_at(1.0)[:3, 3] - traj.pose_at(1.0)[:3, 3],
                               d / 2 * traj.pose_at(1.0)[:3, 1], atol=1e-9)
    first = offset[np.flatnonzero(between)[0]]
    assert first < 0.02 * d
    with pytest.raises(ValidationError, match="t1"):
        traj.lane_change(d, 1.0, 1.0)


def _path_point(positions: np.ndarray, s: float) -> np.ndarray:
    """The point at arc length ``s`` along a polyline (plain NumPy)."""
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(positions, axis=0), axis=1))])
    return np.array([np.interp(s, cum, positions[:, k]) for k in range(3)])


def test_twice_the_speed_reaches_each_arc_length_in_half_the_time():
    log = _turning()  # speeding up along a curve: arc length is not proportional to time
    pos = log.ego_to_world[:, :3, 3]
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pos, axis=0), axis=1))])
    np.testing.assert_allclose(log.arc_length(), cum, rtol=1e-12)
    fast = log.speed_scaled(2.0, rate=10.0)
    t0, t_end = log.span
    # Sampled at 10 a second, from the log's start, until the path ends (after half the log).
    np.testing.assert_allclose(fast.times, t0 + np.arange(len(fast)) / 10.0, atol=1e-12)
    assert fast.times[-1] <= t0 + (t_end - t0) / 2 < fast.times[-1] + 0.1
    for S in (0.3, 1.7, 5.0, 11.2, cum[-1]):
        half = (np.interp(S, cum, log.times) - t0) / 2  # half the time the log took to drive S m
        reach = log.speed_scaled(2.0, rate=1.0 / half)  # its second sample is at that time
        np.testing.assert_allclose(reach.times[1], t0 + half, rtol=1e-12)
        np.testing.assert_allclose(reach.ego_to_world[1][:3, 3], _path_point(pos, S), atol=1e-9)
    # At its own samples the fast ego is exactly on the log path, where the log was at 2 t.
    for tau, pose in zip(fast.times, fast.ego_to_world, strict=True):
        s = np.interp(t0 + 2 * (tau - t0), log.times, cum)
        np.testing.assert_allclose(pose[:3, 3], _path_point(pos, s), atol=1e-9)
    # Half the speed: stops at the end of the log's time span, half-way along its time.
    slow = log.speed_scaled(0.5, rate=4.0)
    assert slow.times[-1] <= t_end < slow.times[-1] + 0.25
    s_end = np.interp(t0 + 0.5 * (slow.times[-1] - t0), log.times, cum)
    np.testing.assert_allclose(slow.ego_to_world[-1][:3, 3], _path_point(pos, s_end), atol=1e-9)
    parked = log.speed_scaled(0.0, rate=2.0)
    assert np.all(parked.ego_to_world == log.ego_to_world[0]) and parked.times[-1] == t_end


def test_speed_at_the_logs_rate_lands_on_its_keyframes():
    scene = make_scene()  # frames 0.1 s apart
    fast = EgoTrajectory.from_scene(scene).speed_scaled(2.0, rate=20.0)
    np.testing.assert_array_equal(fast.times, [0.0, 0.05, 0.1, 0.15, 0.2])
    np.testing.assert_array_equal(fast.ego_to_world, scene.ego_to_world)


# ---------------------------------------------------------------------------------------- replay
def test_a_replay_draws_the_actors_at_the_cameras_time_not_the_paths():
    scene = make_scene(sky=False)  # the car drives ahead of the ego: frames 0-4 at x = 8..12
    fast = EgoTrajectory.from_scene(scene).speed_scaled(2.0, rate=20.0)
    frames = list(replay(scene, fast, cameras=["front"], size=(24, 32)))
    assert [f.t for f in frames] == fast.times.tolist()
    differs = 0
    for fr in frames:
        # The cameras written out here: the ego at the log pose of 2 t, the world at t.
        pose = scene.ego_to_world[fr.index]
        np.testing.assert_array_equal(fr.ego_to_world, pose)
        K = scene.rig.camera("front").K * np.array([[32 / WIDTH], [24 / HEIGHT], [1.0]])
        cams = Cameras(torch.tensor(K[None]).float(),
                       torch.tensor((pose @ scene.rig.camera("front").cam_to_ego)[None]).float(), 32, 24)
        want = splatnet.render(scene.gaussians_at(fr.t), cams)
        torch.testing.assert_close(fr.views[0].rgb, want.rgb[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(fr.views[0].depth, want.depth[0], atol=1e-4, rtol=0)
        at_path_time = splatnet.render(scene.gaussians_at(float(FRAME_TIMES[fr.index])), cams)
        differs += bool((at_path_time.rgb[0] - fr.views[0].rgb).abs().max() > 0.05)
    assert differs >= 3  # the car (and the pedestrian) are elsewhere at the path's own time


def test_a_replay_renders_cameras_of_other_sizes_and_refuses_times_outside_the_scene():
    scene = make_scene()
    traj = EgoTrajectory.from_scene(scene)
    frames = list(replay(scene, traj, cameras=["front_left", "front"], indices=[2]))
    assert len(frames) == 1 and [v.camera for v in frames[0].views] == ["front_left", "front"]
    ref = scene.render(scene.frame_cameras(2, ["front_left", "front"]))
    torch.testing.assert_close(torch.stack([v.rgb for v in frames[0].views]), ref.rgb)
    assert frames[0].lidar is None
    late = EgoTrajectory(np.array([0.0, 0.5]), np.stack([np.eye(4)] * 2))
    with pytest.raises(ValidationError, match=r"pose 1 at t = 0\.5 s is outside the scene's time span"):
        replay(scene, late)
    with pytest.raises(ValidationError, match="unknown camera"):
        replay(scene, traj, cameras=["nope"])
