"""Track: interpolation and moves against plain NumPy geometry, and TRACK.json's one-line errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from splatnet.clip.actors import yaw_pose
from splatnet.errors import FormatError, ValidationError
from splatnet.scene import Track

TIMES = np.array([0.0, 0.1, 0.2])


def _track() -> Track:
    return Track(TIMES.copy(), np.stack([yaw_pose(2.0 * i, 1.0, 0.5, 0.3 * i) for i in range(3)]))


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def test_pose_is_exact_at_entries_interpolated_between_and_absent_outside():
    tr = _track()
    for i, t in enumerate(TIMES):
        np.testing.assert_array_equal(tr.pose_at(t), tr.box_to_world[i])
    # Half-way between entries 0 and 1: centre half-way, yaw half-way (0.15 rad about z).
    mid = tr.pose_at(0.05)
    np.testing.assert_allclose(mid[:3, 3], [1.0, 1.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(mid[:3, :3], _rz(0.15), atol=1e-12)
    np.testing.assert_allclose(tr.pose_at(0.175)[:3, :3], _rz(0.525), atol=1e-12)
    assert tr.pose_at(-1e-9) is None and tr.pose_at(0.2 + 1e-9) is None
    assert tr.span == (0.0, 0.2)
    with pytest.raises(ValidationError, match="finite"):
        tr.pose_at(float("nan"))


def test_moved_shifts_along_world_xy_and_turns_about_the_box_up_axis():
    tr = _track()
    m = tr.moved(1.5, -2.0, 0.25)
    for i in range(3):
        T = tr.box_to_world[i]
        # A point of the box (in its frame) after the move: turned about the box centre by dyaw,
        # then carried by the old pose, then shifted in the world.
        p_box = np.array([1.0, 0.4, -0.3])
        expect = T[:3, :3] @ (_rz(0.25) @ p_box) + T[:3, 3] + np.array([1.5, -2.0, 0.0])
        got = m.box_to_world[i][:3, :3] @ p_box + m.box_to_world[i][:3, 3]
        np.testing.assert_allclose(got, expect, atol=1e-12)
        np.testing.assert_allclose(m.box_to_world[i][:3, 3], T[:3, 3] + [1.5, -2.0, 0.0], atol=1e-12)
    np.testing.assert_array_equal(m.times, tr.times)
    np.testing.assert_array_equal(tr.box_to_world[0], yaw_pose(0, 1.0, 0.5, 0))  # not mutated
    with pytest.raises(ValidationError, match="dx"):
        tr.moved(float("inf"), 0, 0)


@pytest.mark.parametrize("times, poses, match", [
    ([0.0, float("nan")], None, "non-finite"),
    ([0.0, 0.2, 0.1], None, "strictly increasing"),
    ([0.0, 0.0], None, "strictly increasing"),
    ([], None, "non-empty"),
    ([0.0, 1e7], None, "within"),
    ([0.0, 0.1], "shear", "not rigid"),
    ([0.0, 0.1], "short", r"\[2, 4, 4\]"),
])
def test_bad_tracks_are_one_clear_error(times, poses, match):
    n = len(times)
    p = np.stack([np.eye(4)] * max(n, 1))[:n]
    if poses == "shear":
        p[1, 0, 1] = 0.3
    elif poses == "short":
        p = p[:1]
    with pytest.raises(ValidationError, match=match) as e:
        Track(np.array(times), p)
    assert "\n" not in str(e.value)


def test_track_json_by_time_and_by_frame(tmp_path):
    frame_times = np.array([0.0, 0.1, 0.2, 0.3])
    by_t = tmp_path / "t.json"
    by_t.write_text(json.dumps([{"t": 0.05, "box_to_world": yaw_pose(1, 2, 0, 0.5).tolist()},
                                {"t": 0.25, "box_to_world": yaw_pose(3, 2, 0, 0.5).tolist()}]))
    tr = Track.load(by_t, frame_times)
    assert tr.times.tolist() == [0.05, 0.25] and tr.moving is None
    by_frame = tmp_path / "f.json"
    by_frame.write_text(json.dumps([{"frame": 1, "box_to_world": yaw_pose(1, 2, 0, 0.5).tolist(),
                                     "moving": False},
                                    {"frame": 3, "box_to_world": yaw_pose(3, 2, 0, 0.5).tolist(),
                                     "moving": True}]))
    tr = Track.load(by_frame, frame_times)
    assert tr.times.tolist() == [0.1, 0.3] and tr.moving.tolist() == [False, True]
    np.testing.assert_array_equal(tr.box_to_world[1], yaw_pose(3, 2, 0, 0.5))


def test_track_json_round_trip_is_exact(tmp_path):
    tr = Track(np.array([0.0, 1 / 3, 0.7]),
               np.stack([yaw_pose(1 / 7 * i, 2 / 3, 0.1, 0.3 * i) for i in range(3)]),
               np.array([True, False, True]))
    tr.save(tmp_path / "t.json")
    back = Track.load(tmp_path / "t.json", [0.0])
    assert back.times.tobytes() == tr.times.tobytes()
    assert back.box_to_world.tobytes() == tr.box_to_world.tobytes()
    assert back.moving.tolist() == tr.moving.tolist()
    with pytest.raises(FileExistsError, match="already exists"):
        tr.save(tmp_path / "t.json")
    tr.save(tmp_path / "t.json", force=True)


def _pose(**change) -> list:
    p = np.eye(4)
    for (i, j), v in change.get("set", {}).items():
        p[i, j] = v
    return p.tolist()


@pytest.mark.parametrize("content, match", [
    ('[{"t": 0.0, "box_to_world": [[NaN, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}]',
     r"\[0\]\.box_to_world.*NaN"),
    (json.dumps([{"t": 0.0, "box_to_world": _pose(set={(0, 0): 2.0})}]), r"\[0\]\.box_to_world.*not rigid"),
    (json.dumps([{"t": 0.2, "box_to_world": _pose()}, {"t": 0.1, "box_to_world": _pose()}]),
     "strictly increasing"),
    (json.dumps([{"t": float("nan"), "box_to_world": _pose()}]), r"\[0\]\.t.*finite"),
    (json.dumps([{"t": 0.0, "box_to_world": _pose()}, {"frame": 1, "box_to_world": _pose()}]),
     "one of them throughout"),
    (json.dumps([{"frame": 9, "box_to_world": _pose()}]), r"\[0\]\.frame.*0\.\.3"),
    (json.dumps([{"t": 0.0}]), "missing \"box_to_world\""),
    (json.dumps([{"t": 0.0, "box_to_world": _pose(), "speed": 3}]), "unknown key 'speed'"),
    (json.dumps([{"t": 0.0, "box_to_world": _pose(), "moving": "yes"}]), "moving"),
    (json.dumps([{"t": 0.0, "box_to_world": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}]), "4x4"),
    (json.dumps({"t": 0.0}), "non-empty JSON list"),
    (json.dumps([]), "non-empty JSON list"),
    ("[{\"t\": 0.0,", "not valid JSON"),
    ("[" * 100000 + "]" * 100000, "not valid JSON|nested deeper"),
])
def test_bad_track_files_are_one_line_naming_the_file(tmp_path, content, match):
    path = tmp_path / "TRACK.json"
    path.write_text(content)
    with pytest.raises((ValidationError, FormatError), match=match) as e:
        Track.load(path, np.array([0.0, 0.1, 0.2, 0.3]))
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_a_box_standing_still_between_entries_keeps_its_exact_pose():
    # Interpolating between two equal entries gives the entry itself, bit for bit (a parked
    # actor's Gaussians are then placed once, not once per frame).
    rng = np.random.default_rng(0)
    for _ in range(20):  # plain interpolation of equal poses is off in the last bit for most
        pose = yaw_pose(*rng.normal(size=3) * 50, rng.normal())
        track = Track(np.array([0.0, 0.1, 0.2]), np.stack([pose, pose, yaw_pose(4.0, -7.3, 0.9, 0.7)]))
        for t in rng.uniform(0.0, 0.1, 5):
            assert np.array_equal(track.pose_at(t), pose)
    assert not np.array_equal(track.pose_at(0.15), pose)
