"""Converters on the shared real data (DGP/DDAD and nuScenes), checking geometry, not just files.

References are computed here from the raw JSON numbers with an independent quaternion formula
(axis-angle via Rodrigues), never from the converter's output.
"""

from __future__ import annotations

import calendar
import json
import math
from datetime import datetime

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from splatnet.clip import Clip
from splatnet.clip.convert import convert

DATA = SHARED_DATA
DGP = DATA / "dgp_scene" / "scene_02"
NUSC = DATA / "nuscenes_sample"


def quat_rodrigues(q) -> np.ndarray:
    """Rotation of a unit quaternion (w, x, y, z) via axis-angle and Rodrigues' formula."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q)
    w, v = q[0], q[1:]
    s = np.linalg.norm(v)
    if s < 1e-15:
        return np.eye(3)
    angle = 2.0 * math.atan2(s, w)
    k = v / s
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * Kx + (1 - math.cos(angle)) * Kx @ Kx


def T_of(R, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def project(clip_views, pts: torch.Tensor):
    """Pixel coordinates and depth of world points in every view (float64)."""
    w2c = clip_views.cameras.world_to_cam.double()  # [V, 4, 4]
    K = clip_views.cameras.K.double()
    pc = pts.double() @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]  # [V, M, 3]
    z = pc[..., 2]
    u = K[:, None, 0, 0] * pc[..., 0] / z + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * pc[..., 1] / z + K[:, None, 1, 2]
    inside = (
        (z > 0.5) & (u >= 0) & (u < clip_views.cameras.width) & (v >= 0) & (v < clip_views.cameras.height)
    )
    return u, v, z, inside


# ---------------------------------------------------------------------------- DGP


@pytest.fixture(scope="module")
def dgp_clip(tmp_path_factory):
    if not DGP.is_dir():
        pytest.skip(f"shared data not found: {DGP}")
    return Clip.load(convert("dgp", DGP, tmp_path_factory.mktemp("dgp") / "clip"))


@pytest.fixture(scope="module")
def dgp_raw():
    if not DGP.is_dir():
        pytest.skip(f"shared data not found: {DGP}")
    scene = json.loads(next(DGP.glob("scene_*.json")).read_text())
    calib = json.loads(next((DGP / "calibration").glob("*.json")).read_text())
    return scene, calib


def dgp_pose(p) -> np.ndarray:
    r, t = p["rotation"], p["translation"]
    return T_of(quat_rodrigues([r["qw"], r["qx"], r["qy"], r["qz"]]), [t["x"], t["y"], t["z"]])


def iso_seconds(s: str) -> float:
    dt = datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
    return calendar.timegm(dt.timetuple()) + dt.microsecond / 1e6


def test_dgp_structure_and_timestamps(dgp_clip, dgp_raw):
    scene, _ = dgp_raw
    assert dgp_clip.camera_names == [
        "CAMERA_01",
        "CAMERA_05",
        "CAMERA_06",
        "CAMERA_07",
        "CAMERA_08",
        "CAMERA_09",
    ]
    assert dgp_clip.num_frames == 3 and dgp_clip.has_lidar
    # real timestamps kept: the first sample's ISO time, as Unix seconds
    assert dgp_clip.time_origin == pytest.approx(
        iso_seconds(scene["samples"][0]["id"]["timestamp"]), abs=1e-5
    )
    sample_t = [iso_seconds(s["id"]["timestamp"]) for s in scene["samples"]]
    torch.testing.assert_close(
        dgp_clip.timestamps, torch.tensor(sample_t, dtype=torch.float64) - sample_t[0], atol=1e-5, rtol=0
    )
    views = dgp_clip.views(size=(76, 121))
    data = {d["key"]: d for d in scene["data"]}
    for v in range(len(views)):
        s = scene["samples"][int(views.frame_ids[v])]
        d = next(data[k] for k in s["datum_keys"] if data[k]["id"]["name"] == views.camera_names[v])
        assert float(views.cameras.timestamps[v]) == pytest.approx(
            iso_seconds(d["id"]["timestamp"]) - sample_t[0], abs=1e-5
        )


def test_dgp_hand_computed_camera_pose(dgp_clip, dgp_raw):
    scene, calib = dgp_raw
    data = {d["key"]: d for d in scene["data"]}
    s0, s1 = scene["samples"][0], scene["samples"][1]
    lidar0 = next(data[k] for k in s0["datum_keys"] if data[k]["id"]["name"] == "LIDAR")
    cam = next(data[k] for k in s1["datum_keys"] if data[k]["id"]["name"] == "CAMERA_05")
    # world = ego frame of sample 0 = LiDAR pose @ inverse(LiDAR extrinsic)
    X_lidar = dgp_pose(calib["extrinsics"][calib["names"].index("LIDAR")])
    E0 = dgp_pose(lidar0["datum"]["point_cloud"]["pose"]) @ np.linalg.inv(X_lidar)
    expected = np.linalg.inv(E0) @ dgp_pose(cam["datum"]["image"]["pose"])
    got = dgp_clip.cam_to_world(1, "CAMERA_05")
    np.testing.assert_allclose(got, expected, atol=1e-9)
    views = dgp_clip.views(frames=[1], cameras=["CAMERA_05"])
    np.testing.assert_allclose(views.cameras.cam_to_world[0].double().numpy(), expected, atol=1e-5)
    intr = calib["intrinsics"][calib["names"].index("CAMERA_05")]
    np.testing.assert_allclose(
        views.cameras.K[0].double().numpy(),
        [[intr["fx"], 0, intr["cx"]], [0, intr["fy"], intr["cy"]], [0, 0, 1]],
        rtol=1e-6,
    )


def test_dgp_lidar_projects_into_images(dgp_clip):
    for f in range(3):
        views = dgp_clip.views(frames=[f], size=(152, 242))
        pts = dgp_clip.lidar(f)
        assert pts.shape[0] > 40000
        u, v, z, inside = project(views, pts)
        frac = inside.double().mean(1)
        # each camera's horizontal FOV is 45-90 deg of the 360 deg sweep: 5-35 % of the points
        assert bool(((frac > 0.05) & (frac < 0.35)).all()), frac
        # six surround cameras together see most of the sweep
        assert float(inside.any(0).double().mean()) > 0.6
        for i in range(len(views)):
            zi = z[i][inside[i]]
            assert 3.0 < float(zi.median()) < 60.0
            assert float(zi.quantile(0.05)) > 1.0
    # the ground (lowest points, ego frame 0 = world frame 0) lands in the lower half of the images
    pts = dgp_clip.lidar(0)
    ground = pts[pts[:, 2] < torch.quantile(pts[:, 2], 0.2)]
    views = dgp_clip.views(frames=[0])
    u, v, z, inside = project(views, ground)
    for i in range(len(views)):
        assert float(v[i][inside[i]].median()) > views.cameras.height / 2


def test_dgp_lidar_depth_matches_camera_by_camera_timing(dgp_clip):
    """Camera centres follow the ego trajectory with a constant mounting offset."""
    ego = dgp_clip.ego_to_world.numpy()
    steps = np.linalg.norm(np.diff(ego[:, :3, 3], axis=0), axis=1)
    assert np.all((steps > 1.0) & (steps < 1.6))  # ~1.3 m per step (README)
    for name in dgp_clip.camera_names:
        offsets = []
        for f in range(3):
            c2w = dgp_clip.cam_to_world(f, name)
            # camera centre in the ego frame of its own frame: the mounting position, constant
            offsets.append((np.linalg.inv(ego[f]) @ c2w)[:3, 3])
        offsets = np.array(offsets)
        assert np.abs(offsets - offsets[0]).max() < 0.25  # cameras fire ~90 ms before the LiDAR
        assert np.linalg.norm(offsets[0][:2]) < 3.0 and 1.0 < offsets[0][2] < 2.5
        # and the camera centres move like the ego
        centres = np.array([dgp_clip.cam_to_world(f, name)[:3, 3] for f in range(3)])
        np.testing.assert_allclose(np.diff(centres, axis=0), np.diff(ego[:, :3, 3], axis=0), atol=0.15)


def level_and_facing(cam_to_ego: np.ndarray, travel_dir: np.ndarray) -> tuple[float, float]:
    """(camera 'down' axis · ego up, optical axis · direction of travel), both in the ego frame."""
    R = cam_to_ego[:3, :3]
    return float(R[:, 1] @ np.array([0.0, 0.0, 1.0])), float(R[:, 2] @ travel_dir)


def test_dgp_cameras_level_and_facing_the_right_way(dgp_clip):
    """Quaternion convention check: cameras are level (image 'down' = ego down) and the front
    camera looks along the direction the ego actually drives (from the independent ego poses);
    the conjugate-quaternion convention fails both."""
    ego = dgp_clip.ego_to_world.numpy()
    travel = np.linalg.inv(ego[0])[:3, :3] @ (ego[2, :3, 3] - ego[0, :3, 3])
    travel /= np.linalg.norm(travel)
    assert travel[0] > 0.99  # DGP ego frame: x forward
    for name in dgp_clip.camera_names:
        X = dgp_clip.camera(name).cam_to_ego
        down_up, _ = level_and_facing(X, travel)
        assert down_up < -0.95, name
        conj = X.copy()
        conj[:3, :3] = X[:3, :3].T  # what the conjugate (wrong) quaternion convention would give
        assert level_and_facing(conj, travel)[0] > -0.95, name  # ... fails the level test
    assert level_and_facing(dgp_clip.camera("CAMERA_01").cam_to_ego, travel)[1] > 0.99  # front
    assert level_and_facing(dgp_clip.camera("CAMERA_09").cam_to_ego, travel)[1] < -0.99  # rear


# ---------------------------------------------------------------------------- nuScenes


@pytest.fixture(scope="module")
def ns_clip(tmp_path_factory):
    if not NUSC.is_dir():
        pytest.skip(f"shared data not found: {NUSC}")
    return Clip.load(convert("nuscenes", NUSC, tmp_path_factory.mktemp("ns") / "clip"))


def ns_table(name):
    return json.loads((NUSC / "v1.0-test" / f"{name}.json").read_text())


def test_nuscenes_hand_computed_camera_pose_and_time(ns_clip):
    sensors = {s["token"]: s for s in ns_table("sensor")}
    calibs = {c["token"]: c for c in ns_table("calibrated_sensor")}
    poses = {p["token"]: p for p in ns_table("ego_pose")}
    sample = ns_table("sample")[0]
    by_channel = {}
    for sd in ns_table("sample_data"):
        by_channel[sensors[calibs[sd["calibrated_sensor_token"]]["sensor_token"]]["channel"]] = sd

    def ego(sd):
        p = poses[sd["ego_pose_token"]]
        return T_of(quat_rodrigues(p["rotation"]), p["translation"])

    def calib(sd):
        c = calibs[sd["calibrated_sensor_token"]]
        return T_of(quat_rodrigues(c["rotation"]), c["translation"])

    E0 = ego(by_channel["LIDAR_TOP"])
    assert ns_clip.time_origin == pytest.approx(sample["timestamp"] * 1e-6, abs=1e-6)
    views = ns_clip.views()
    for name in ("CAM_FRONT", "CAM_BACK_LEFT"):
        sd = by_channel[name]
        expected = np.linalg.inv(E0) @ ego(sd) @ calib(sd)  # the camera at its own capture time
        np.testing.assert_allclose(ns_clip.cam_to_world(0, name), expected, atol=1e-9)
        i = views.camera_names.index(name)
        np.testing.assert_allclose(views.cameras.cam_to_world[i].double().numpy(), expected, atol=1e-5)
        assert float(views.cameras.timestamps[i]) == pytest.approx(
            (sd["timestamp"] - sample["timestamp"]) * 1e-6, abs=1e-6
        )
        K = np.asarray(calibs[sd["calibrated_sensor_token"]]["camera_intrinsic"])
        np.testing.assert_allclose(views.cameras.K[i].double().numpy(), K, rtol=1e-6)
    # the per-camera ego pose matters: CAM_FRONT_LEFT fired ~43 ms before the sweep
    sd = by_channel["CAM_FRONT_LEFT"]
    moved = np.linalg.norm(ego(sd)[:3, 3] - E0[:3, 3])
    assert moved > 0.3
    c = ns_clip.cam_to_world(0, "CAM_FRONT_LEFT")[:3, 3]
    wrong = (calib(sd))[:3, 3]  # where it would be with the sweep's ego pose
    assert np.linalg.norm(c - wrong) == pytest.approx(moved, abs=0.05)


def test_nuscenes_lidar_projects_into_images(ns_clip):
    views = ns_clip.views(size=(225, 400))
    pts = ns_clip.lidar(0)
    assert pts.shape[0] > 20000
    intensity = ns_clip.lidar_intensity(0)
    assert intensity.shape == (pts.shape[0],)
    u, v, z, inside = project(views, pts)
    frac = inside.double().mean(1)
    assert bool(((frac > 0.04) & (frac < 0.3)).all()), frac
    assert float(inside.any(0).double().mean()) > 0.5
    for i in range(len(views)):
        zi = z[i][inside[i]]
        assert 3.0 < float(zi.median()) < 50.0
    # ground points (lowest in the ego frame; ego origin is on the ground) below the horizon
    ground = pts[pts[:, 2] < 0.3]
    assert ground.shape[0] > 1000
    u, v, z, inside = project(views, ground)
    for i in range(len(views)):
        assert float(v[i][inside[i]].median()) > views.cameras.height / 2


def test_nuscenes_camera_centres_on_the_car(ns_clip):
    for name in ns_clip.camera_names:
        X = ns_clip.camera(name).cam_to_ego
        assert level_and_facing(X, np.array([1.0, 0.0, 0.0]))[0] < -0.95, name  # level
    # nuScenes ego frame: x forward; CAM_FRONT looks forward, CAM_BACK backward
    assert level_and_facing(ns_clip.camera("CAM_FRONT").cam_to_ego, np.array([1.0, 0, 0]))[1] > 0.99
    assert level_and_facing(ns_clip.camera("CAM_BACK").cam_to_ego, np.array([1.0, 0, 0]))[1] < -0.99
    for name in ns_clip.camera_names:
        c = ns_clip.cam_to_world(0, name)[:3, 3]
        assert np.linalg.norm(c[:2]) < 2.5  # within the car's footprint (ego moves < 0.5 m)
        assert 1.3 < c[2] < 2.0  # camera height above the ground


# ---------------------------------------------------------------------------- CLI


def test_cli_convert_dgp(tmp_path, capsys):
    if not DGP.is_dir():
        pytest.skip(f"shared data not found: {DGP}")
    from splatnet.cli import main

    out = tmp_path / "c"
    assert main(["convert", "dgp", str(DGP), str(out)]) == 0
    assert "6 cameras x 3 frames, with LiDAR" in capsys.readouterr().out
    assert main(["convert", "dgp", str(DGP), str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert Clip.load(out).num_frames == 3
