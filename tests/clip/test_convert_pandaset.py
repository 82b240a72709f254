"""PandaSet converter on the shared real sequence (``../shared/data/pandaset_002``), checking
geometry, not just files.

References are computed here from the raw JSON numbers with a quaternion formula of their own
(rotating the basis vectors by ``q v q*``), and the raw LiDAR is read with ``pandas.read_pickle``
(the shared data is a trusted download), never from the converter's output. Conversions use a
few frames at 270x480 so the tests stay fast. Skipped without the data or without pandas.
"""

from __future__ import annotations

import gzip
import json
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from splatnet.clip import Clip
from splatnet.clip.convert import convert
from splatnet.errors import FormatError, SplatnetError, ValidationError

SEQ = SHARED_DATA / "pandaset_002"
CAMS = ["front_camera", "front_left_camera", "front_right_camera", "left_camera", "right_camera",
        "back_camera"]
FRAMES = [36, 37, 38]  # the end of the sequence, where the ego moves fastest (~2.7 m/s)
SIZE = (270, 480)  # a quarter of 1080x1920

# The clip's ego frame is PandaSet's LiDAR frame (x right, y forward, z up) turned to x forward,
# y left, z up: the columns are the ego axes written in LiDAR coordinates.
EGO_IN_LIDAR = np.array([[0.0, -1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0],
                         [0.0, 0.0, 0.0, 1.0]])

needs_data = pytest.mark.skipif(not SEQ.is_dir(), reason=f"shared data not found: {SEQ}")


def qmul(a, b):
    return np.array([
        a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
        a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
        a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
        a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0],
    ])


def rot_by_conjugation(q) -> np.ndarray:
    """Rotation matrix whose columns are the basis vectors rotated by ``q e q*`` (q = w, x, y, z)."""
    q = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    qc = q * np.array([1.0, -1.0, -1.0, -1.0])
    return np.stack([qmul(qmul(q, np.concatenate([[0.0], e])), qc)[1:] for e in np.eye(3)], axis=1)


def raw_pose(p) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = rot_by_conjugation([p["heading"][k] for k in "wxyz"])
    T[:3, 3] = [p["position"][k] for k in "xyz"]
    return T


def raw_json(rel: str):
    return json.loads((SEQ / rel).read_text())


def copy_frames(dst: Path, n: int) -> Path:
    """The sequence's JSON files and its first ``n`` images and sweeps, in a new directory."""
    for cam in CAMS:
        (dst / "camera" / cam).mkdir(parents=True)
        for name in ("intrinsics.json", "poses.json", "timestamps.json"):
            shutil.copy(SEQ / "camera" / cam / name, dst / "camera" / cam / name)
        for i in range(n):
            shutil.copy(SEQ / "camera" / cam / f"{i:02d}.jpg", dst / "camera" / cam / f"{i:02d}.jpg")
    (dst / "lidar").mkdir()
    for name in ("poses.json", "timestamps.json", *(f"{i:02d}.pkl.gz" for i in range(n))):
        shutil.copy(SEQ / "lidar" / name, dst / "lidar" / name)
    return dst


@pytest.fixture(scope="module")
def ps_clip(tmp_path_factory):
    if not SEQ.is_dir():
        pytest.skip(f"shared data not found: {SEQ}")
    pytest.importorskip("pandas")
    path = convert("pandaset", SEQ, tmp_path_factory.mktemp("ps") / "clip",
                   frames=slice(FRAMES[0], FRAMES[-1] + 1), size=SIZE)
    return Clip.load(path)


def project(views, pts: torch.Tensor):
    """Pixel coordinates and depth of world points in every view (float64)."""
    w2c = views.cameras.world_to_cam.double()
    K = views.cameras.K.double()
    pc = pts.double() @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]  # [V, M, 3]
    z = pc[..., 2]
    u = K[:, None, 0, 0] * pc[..., 0] / z + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * pc[..., 1] / z + K[:, None, 1, 2]
    inside = (z > 0.5) & (u >= 0) & (u < views.cameras.width) & (v >= 0) & (v < views.cameras.height)
    return u, v, z, inside


# ------------------------------------------------------------------------- structure


def test_structure_timestamps_and_intrinsics(ps_clip):
    assert ps_clip.camera_names == CAMS
    assert ps_clip.num_frames == 3 and ps_clip.has_lidar
    lidar_t = raw_json("lidar/timestamps.json")
    assert ps_clip.time_origin == pytest.approx(lidar_t[FRAMES[0]], abs=1e-6)
    np.testing.assert_allclose(ps_clip.timestamps.numpy(),
                               np.array([lidar_t[i] for i in FRAMES]) - lidar_t[FRAMES[0]], atol=1e-6)
    for cam in CAMS:
        cam_t = raw_json(f"camera/{cam}/timestamps.json")
        for f, i in enumerate(FRAMES):
            # each image keeps its own capture time (the cameras fire 19-100 ms before the sweep)
            assert ps_clip.image_timestamp(f, cam) == pytest.approx(cam_t[i] - lidar_t[FRAMES[0]], abs=1e-6)
        intr = raw_json(f"camera/{cam}/intrinsics.json")
        c = ps_clip.camera(cam)
        assert (c.width, c.height) == (480, 270)
        sx, sy = 480 / 1920, 270 / 1080  # the source images are 1920x1080
        np.testing.assert_allclose(
            c.K, [[intr["fx"] * sx, 0, intr["cx"] * sx], [0, intr["fy"] * sy, intr["cy"] * sy], [0, 0, 1]],
            rtol=1e-12)
    assert ps_clip.metadata["source"]["frames"] == FRAMES
    views = ps_clip.views(frames=[0], cameras=["front_camera"])
    assert views.images.shape == (1, 270, 480, 3)


def test_hand_computed_camera_poses_match_to_1e9(ps_clip):
    """Every image's cam_to_world is poses.json's, re-expressed in the clip's world (the ego
    frame of the first converted frame = LiDAR pose of frame 36, turned x forward)."""
    E0 = raw_pose(raw_json("lidar/poses.json")[FRAMES[0]]) @ EGO_IN_LIDAR
    np.testing.assert_allclose(ps_clip.world_from_poses, np.linalg.inv(E0), atol=1e-9)
    for cam in CAMS:
        poses = raw_json(f"camera/{cam}/poses.json")
        for f, i in enumerate(FRAMES):
            expected = np.linalg.inv(E0) @ raw_pose(poses[i])
            np.testing.assert_allclose(ps_clip.cam_to_world(f, cam), expected, atol=1e-9, rtol=0)
    views = ps_clip.views(frames=[2], cameras=["back_camera"])
    expected = np.linalg.inv(E0) @ raw_pose(raw_json("camera/back_camera/poses.json")[FRAMES[2]])
    np.testing.assert_allclose(views.cameras.cam_to_world[0].double().numpy(), expected, atol=1e-5)


def test_ego_poses_and_conventions(ps_clip):
    lidar_poses = raw_json("lidar/poses.json")
    E0 = raw_pose(lidar_poses[FRAMES[0]]) @ EGO_IN_LIDAR
    for f, i in enumerate(FRAMES):
        expected = np.linalg.inv(E0) @ raw_pose(lidar_poses[i]) @ EGO_IN_LIDAR
        np.testing.assert_allclose(ps_clip.ego_to_world[f].numpy(), expected, atol=1e-9)
    ego = ps_clip.ego_to_world.numpy()
    travel = np.linalg.inv(ego[0])[:3, :3] @ (ego[2, :3, 3] - ego[0, :3, 3])
    assert 0.4 < np.linalg.norm(travel) < 0.7  # ~2.7 m/s over 0.2 s
    assert (travel / np.linalg.norm(travel))[0] > 0.99  # ego frame: x forward
    up = np.array([0.0, 0.0, 1.0])
    for cam in CAMS:
        R = ps_clip.camera(cam).cam_to_ego[:3, :3]
        assert R[:, 1] @ up < -0.95, cam  # level: the image's "down" is the ego's down
        assert 1.2 < ps_clip.camera(cam).cam_to_ego[2, 3] < 2.2, cam  # cameras above the origin
    assert ps_clip.camera("front_camera").cam_to_ego[:3, 2] @ [1.0, 0, 0] > 0.99
    assert ps_clip.camera("back_camera").cam_to_ego[:3, 2] @ [1.0, 0, 0] < -0.99
    assert ps_clip.camera("left_camera").cam_to_ego[:3, 2] @ [0, 1.0, 0] > 0.99  # y left
    assert ps_clip.camera("right_camera").cam_to_ego[:3, 2] @ [0, 1.0, 0] < -0.99


def test_camera_centres_follow_the_ego_at_capture_time(ps_clip):
    ego = ps_clip.ego_to_world.numpy()
    for cam in CAMS:
        centres = np.array([ps_clip.cam_to_world(f, cam)[:3, 3] for f in range(3)])
        np.testing.assert_allclose(np.diff(centres, axis=0), np.diff(ego[:, :3, 3], axis=0), atol=0.05)
        # the camera rides on the car: its offset in the ego frame of its frame is nearly constant
        offsets = np.array([(np.linalg.inv(ego[f]) @ ps_clip.cam_to_world(f, cam))[:3, 3] for f in range(3)])
        assert np.abs(offsets - offsets[0]).max() < 0.05, cam
    # the back camera fires ~100 ms before the sweep: it sits where the ego was then, not where
    # the sweep's ego pose and the rig extrinsic would put it
    step_t = float(ps_clip.timestamps[2] - ps_clip.timestamps[1])
    speed = np.linalg.norm(ego[2, :3, 3] - ego[1, :3, 3]) / step_t
    dt = float(ps_clip.timestamps[2]) - ps_clip.image_timestamp(2, "back_camera")
    assert 0.09 < dt < 0.11
    at_sweep = (ego[2] @ ps_clip.camera("back_camera").cam_to_ego)[:3, 3]
    gap = np.linalg.norm(ps_clip.cam_to_world(2, "back_camera")[:3, 3] - at_sweep)
    assert gap == pytest.approx(speed * dt, abs=0.03)
    assert all(v["max_offset_m"] < 0.05 for v in ps_clip.metadata["source"]["extrinsic_fit"].values())


# ----------------------------------------------------------------------------- LiDAR


def test_lidar_is_the_sweep_in_world_coordinates(ps_clip):
    import pandas as pd

    E0 = raw_pose(raw_json("lidar/poses.json")[FRAMES[0]]) @ EGO_IN_LIDAR
    for f, i in enumerate(FRAMES):
        df = pd.read_pickle(SEQ / "lidar" / f"{i:02d}.pkl.gz")
        xyz = df[["x", "y", "z"]].to_numpy(np.float64)
        expected = xyz @ np.linalg.inv(E0)[:3, :3].T + np.linalg.inv(E0)[:3, 3]
        got = ps_clip.lidar(f).double().numpy()
        assert got.shape == expected.shape and got.shape[0] > 100000
        np.testing.assert_allclose(got, expected, atol=2e-4, rtol=0)  # float32 storage
        np.testing.assert_array_equal(ps_clip.lidar_intensity(f).numpy(), df["i"].to_numpy(np.float32))


def test_lidar_projects_into_images(ps_clip):
    for f in range(3):
        views = ps_clip.views(frames=[f])
        pts = ps_clip.lidar(f)
        u, v, z, inside = project(views, pts)
        frac = inside.double().mean(1)
        # front: 52 deg wide (fx 1970 px), the others ~92 deg: 10-30 % of a 360 deg sweep each
        assert bool(((frac > 0.08) & (frac < 0.35)).all()), frac
        assert float(inside.any(0).double().mean()) > 0.9  # six cameras see all around
        for i in range(len(views)):
            zi = z[i][inside[i]]
            assert 3.0 < float(zi.median()) < 60.0
            assert float(zi.quantile(0.05)) > 1.0
    # the ground (lowest points near the car, in the ego frame) lands in the lower half of images
    pts = ps_clip.lidar(0).double()
    E = ps_clip.ego_to_world[0]
    local = (pts - E[:3, 3]) @ E[:3, :3]
    near = local[:, :2].norm(dim=1) < 20
    ground = pts[near & (local[:, 2] < torch.quantile(local[near, 2], 0.2))]
    views = ps_clip.views(frames=[0])
    u, v, z, inside = project(views, ground)
    for i in range(len(views)):
        assert float(v[i][inside[i]].median()) > views.cameras.height / 2, views.camera_names[i]


@needs_data
def test_missing_sweep_warns_and_leaves_that_frame_without_lidar(tmp_path):
    pytest.importorskip("pandas")
    src = copy_frames(tmp_path / "seq", 3)
    (src / "lidar" / "01.pkl.gz").unlink()
    with pytest.warns(UserWarning, match=r"frame\(s\) \[1\].*01\.pkl\.gz missing"):
        path = convert("pandaset", src, tmp_path / "clip", frames=slice(0, 3), size=(54, 96))
    clip = Clip.load(path)
    assert clip.num_frames == 3
    assert clip.lidar(1) is None
    assert clip.lidar(0).shape[0] > 100000 and clip.lidar(2).shape[0] > 100000
    assert clip.metadata["source"]["frames_without_lidar"] == [1]
    # the copy holds images 00-02 only: converting all 40 frames names the first missing image
    with pytest.raises(FileNotFoundError, match=r"front_camera/03\.jpg"):
        convert("pandaset", src, tmp_path / "clip2", size=(54, 96))
    assert not (tmp_path / "clip2").exists()


@needs_data
def test_frame_subset_and_extrinsics_do_not_depend_on_it(tmp_path, ps_clip):
    path = convert("pandaset", SEQ, tmp_path / "clip", frames=[0, 39], size=(54, 96))
    clip = Clip.load(path)
    assert clip.num_frames == 2 and clip.metadata["source"]["frames"] == [0, 39]
    lidar_t = raw_json("lidar/timestamps.json")
    assert float(clip.timestamps[1]) == pytest.approx(lidar_t[39] - lidar_t[0], abs=1e-6)
    for cam in CAMS:  # fitted on the whole sequence, whatever frames are converted
        np.testing.assert_allclose(clip.camera(cam).cam_to_ego, ps_clip.camera(cam).cam_to_ego, atol=1e-12)
    with pytest.raises(ValidationError, match="frames: 40 is not a frame index"):
        convert("pandaset", SEQ, tmp_path / "c2", frames=[0, 40])
    with pytest.raises(ValidationError, match="strictly increasing"):
        convert("pandaset", SEQ, tmp_path / "c2", frames=[3, 1])
    with pytest.raises(ValidationError, match="selects no frame"):
        convert("pandaset", SEQ, tmp_path / "c2", frames=slice(50, 60))
    with pytest.raises(ValidationError, match="size: expected"):
        convert("pandaset", SEQ, tmp_path / "c2", size=(0, 96))
    assert not (tmp_path / "c2").exists()


@needs_data
def test_full_size_copies_images_byte_for_byte(tmp_path):
    pytest.importorskip("pandas")
    src = copy_frames(tmp_path / "seq", 1)
    clip = Clip.load(convert("pandaset", src, tmp_path / "clip", frames=[0]))
    assert (clip.camera("front_camera").width, clip.camera("front_camera").height) == (1920, 1080)
    intr = raw_json("camera/front_camera/intrinsics.json")
    K = clip.camera("front_camera").K
    assert K[0, 0] == intr["fx"] and K[1, 2] == intr["cy"]
    assert clip.image_path(0, "left_camera").read_bytes() == (SEQ / "camera/left_camera/00.jpg").read_bytes()


# ------------------------------------------------------------------ pickles and pandas


def _gz(path: Path, payload: bytes) -> Path:
    path.write_bytes(gzip.compress(payload))
    return path


@needs_data
def test_sweeps_are_unpickled_through_an_allow_list(tmp_path):
    pytest.importorskip("pandas")
    from splatnet.clip.convert.pandaset import read_sweep

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    bad = _gz(tmp_path / "00.pkl.gz", pickle.dumps(Exploit()))
    with pytest.raises(FormatError, match=r"00\.pkl\.gz: cannot read.*refusing to unpickle builtins\.exec"):
        read_sweep(bad)
    assert not marker.exists()
    # a dotted name reaching through an allowed module, and a module object, are refused too
    for module, name in (("pandas.core.frame", "np.load"), ("pandas.core.frame", "np")):
        payload = (b"\x80\x04\x8c" + bytes([len(module)]) + module.encode() + b"\x8c" + bytes([len(name)])
                   + name.encode() + b"\x93.")
        with pytest.raises(FormatError, match="refusing to unpickle"):
            read_sweep(_gz(tmp_path / "x.pkl.gz", payload))
    # a DataFrame pickled by an older pandas / numpy (protocol 3, numpy.core: the devkit's own
    # cuboid files) passes the allow-list; it is not a sweep, and the error says why
    with pytest.raises(FormatError, match=r"no column\(s\) \['x', 'y', 'z'\]"):
        read_sweep(SEQ / "annotations" / "cuboids" / "00.pkl.gz")
    with pytest.raises(FormatError, match="expected a pandas DataFrame, got list"):
        read_sweep(_gz(tmp_path / "l.pkl.gz", pickle.dumps([1, 2])))
    with pytest.raises(FormatError, match="cannot read the LiDAR sweep"):
        read_sweep(_gz(tmp_path / "t.pkl.gz", pickle.dumps(np.zeros(3))[:20]))


@needs_data
def test_without_pandas_one_line_says_what_to_install(tmp_path, monkeypatch, capsys):
    from splatnet.cli import main

    src = copy_frames(tmp_path / "seq", 1)
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(SplatnetError, match=r"needs pandas: pip install 'splatnet\[pandaset\]'"):
        convert("pandaset", src, tmp_path / "clip", frames=[0], size=(54, 96))
    assert main(["convert", "pandaset", str(src), str(tmp_path / "clip"), "--frames", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs pandas: pip install 'splatnet[pandaset]'" in err[0], err
    assert not (tmp_path / "clip").exists()


# ------------------------------------------------------------------------------- CLI


@needs_data
def test_cli_convert_pandaset(tmp_path, capsys):
    pytest.importorskip("pandas")
    from splatnet.cli import main

    out = tmp_path / "c"
    assert main(["convert", "pandaset", str(SEQ), str(out), "--frames", "38:40", "--size", "54x96"]) == 0
    assert "6 cameras x 2 frames, with LiDAR" in capsys.readouterr().out
    assert main(["convert", "pandaset", str(SEQ), str(out), "--frames", "38:40"]) == 1
    assert "already exists" in capsys.readouterr().err
    clip = Clip.load(out)
    back = clip.camera("back_camera")
    assert clip.num_frames == 2 and (back.height, back.width) == (54, 96)
    assert main(["convert", "pandaset", str(SEQ / "camera"), str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a PandaSet sequence" in err[0]
    # the other converters do not take --frames / --size: an error, not a silently ignored option
    assert main(["convert", "dgp", str(SEQ), str(tmp_path / "e"), "--frames", "0:2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--frames: the dgp converter does not take it" in err[0], err


def test_cli_help_warns_about_pickles(capsys):
    from splatnet.cli import main

    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "pandaset" in text and "pickle" in text and "trusted" in text
