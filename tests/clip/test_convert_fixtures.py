"""nerfstudio and COLMAP converters on tiny hand-written fixtures with known poses."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from splatnet.cameras import look_at_pose
from splatnet.clip import Clip
from splatnet.clip.convert import convert
from splatnet.errors import FormatError, ValidationError


def look_at_cv(eye, target) -> np.ndarray:
    return look_at_pose(eye, target).numpy()


def project_cv(K, c2w, X):
    w2c = np.linalg.inv(c2w)
    p = w2c[:3, :3] @ X + w2c[:3, 3]
    return np.array([K[0, 0] * p[0] / p[2] + K[0, 2], K[1, 1] * p[1] / p[2] + K[1, 2]]), p[2]


def rot_to_quat(R) -> np.ndarray:
    """(w, x, y, z) of a rotation matrix (Shepperd's method, for well-conditioned R)."""
    w = math.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    if w > 0.1:
        return np.array(
            [w, (R[2, 1] - R[1, 2]) / (4 * w), (R[0, 2] - R[2, 0]) / (4 * w), (R[1, 0] - R[0, 1]) / (4 * w)]
        )
    x = math.sqrt(max(0.0, 1 + R[0, 0] - R[1, 1] - R[2, 2])) / 2
    return np.array(
        [(R[2, 1] - R[1, 2]) / (4 * x), x, (R[0, 1] + R[1, 0]) / (4 * x), (R[0, 2] + R[2, 0]) / (4 * x)]
    )


def pattern(xn, yn):
    """A smooth colour pattern defined on normalised (undistorted) image coordinates."""
    return np.stack(
        [
            0.5 + 0.4 * np.sin(20 * xn) * np.cos(15 * yn),
            0.5 + 0.4 * np.cos(18 * xn + 1),
            0.5 + 0.4 * np.sin(17 * yn),
        ],
        -1,
    )


def distorted_pattern_image(K, dist, w, h) -> np.ndarray:
    """Image of ``pattern`` seen through OpenCV distortion (k1, k2, p1, p2), pixel centres +0.5.

    Inverts the distortion per pixel by fixed-point iteration (independent of kornia).
    """
    k1, k2, p1, p2 = dist
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    xd, yd = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
    x, y = xd.copy(), yd.copy()
    for _ in range(100):
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 * r2
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x, y = (xd - dx) / radial, (yd - dy) / radial
    return np.clip(np.rint(pattern(x, y) * 255), 0, 255).astype(np.uint8)


def ideal_pattern_image(K, w, h) -> np.ndarray:
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    return pattern((u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1])


# ---------------------------------------------------------------------------- nerfstudio

W, H = 64, 48
TARGET = np.array([0.3, -0.2, 0.5])
EYES = [np.array([3.0, 0.5, 1.0]), np.array([-1.0, 2.5, 1.5]), np.array([0.5, -2.0, 2.0])]


def write_nerfstudio(root: Path, *, distortion=None, per_frame=False) -> list[dict]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    frames, truth = [], []
    for i, eye in enumerate(EYES):
        c2w_cv = look_at_cv(eye, TARGET)
        c2w_gl = c2w_cv.copy()
        c2w_gl[:3, 1:3] *= -1  # OpenCV -> OpenGL by hand: y up, z backward
        w, h = (W, H) if not (per_frame and i == 2) else (40, 30)
        fx = 50.0 + (10.0 * i if per_frame else 0.0)
        K = np.array([[fx, 0, w / 2 + 1.0], [0, fx * 1.02, h / 2 - 1.0], [0, 0, 1]])
        if distortion is not None:
            img = distorted_pattern_image(K, distortion, w, h)
            fname = f"images/frame_{i:03d}.png"
        else:
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            fname = f"images/frame_{i:03d}.jpg"
        Image.fromarray(img).save(root / fname)
        fr = {"file_path": fname, "transform_matrix": c2w_gl.tolist()}
        if per_frame:
            fr.update(fl_x=K[0, 0], fl_y=K[1, 1], cx=K[0, 2], cy=K[1, 2], w=w, h=h)
        frames.append(fr)
        truth.append({"K": K, "c2w": c2w_cv, "path": root / fname, "w": w, "h": h})
    meta: dict = {"frames": frames}
    if not per_frame:
        K = truth[0]["K"]
        meta.update(fl_x=K[0, 0], fl_y=K[1, 1], cx=K[0, 2], cy=K[1, 2], w=W, h=H)
    if distortion is not None:
        meta.update(
            camera_model="OPENCV", k1=distortion[0], k2=distortion[1], p1=distortion[2], p2=distortion[3]
        )
    (root / "transforms.json").write_text(json.dumps(meta))
    return truth


def test_nerfstudio_global_intrinsics(tmp_path):
    truth = write_nerfstudio(tmp_path / "ns")
    clip = Clip.load(convert("nerfstudio", tmp_path / "ns", tmp_path / "clip"))
    assert clip.num_frames == 1 and clip.num_cameras == 3
    views = clip.views()
    for i, t in enumerate(truth):
        np.testing.assert_allclose(views.cameras.cam_to_world[i].double().numpy(), t["c2w"], atol=1e-6)
        np.testing.assert_allclose(views.cameras.K[i].double().numpy(), t["K"], atol=1e-5)
        # the target point projects to the same pixel through the converted camera
        uv, z = project_cv(t["K"], t["c2w"], TARGET)
        w2c = views.cameras.world_to_cam[i].double().numpy()
        p = w2c[:3, :3] @ TARGET + w2c[:3, 3]
        K = views.cameras.K[i].double().numpy()
        assert p[2] > 0
        np.testing.assert_allclose(
            [K[0, 0] * p[0] / p[2] + K[0, 2], K[1, 1] * p[1] / p[2] + K[1, 2]], uv, atol=1e-4
        )
        # optical axis points at the target: it projects at the principal point
        np.testing.assert_allclose(uv, t["K"][:2, 2], atol=1e-9)
        # no distortion: the JPEG is copied byte for byte
        assert clip.image_path(0, f"img{i:05d}").read_bytes() == t["path"].read_bytes()


def test_nerfstudio_per_frame_intrinsics(tmp_path):
    truth = write_nerfstudio(tmp_path / "ns", per_frame=True)
    clip = Clip.load(convert("nerfstudio", tmp_path / "ns" / "transforms.json", tmp_path / "clip"))
    assert [clip.camera(n).width for n in clip.camera_names] == [64, 64, 40]
    for i, t in enumerate(truth):
        np.testing.assert_allclose(clip.camera(f"img{i:05d}").K, t["K"])
        np.testing.assert_allclose(clip.cam_to_world(0, f"img{i:05d}"), t["c2w"], atol=1e-9)
    with pytest.raises(ValidationError, match="different image sizes"):
        clip.views()
    views = clip.views(size=(30, 40))
    np.testing.assert_allclose(
        views.cameras.K[0].numpy(), truth[0]["K"] * [[40 / 64], [30 / 48], [1]], rtol=1e-6
    )


def test_nerfstudio_undistorts(tmp_path):
    dist = (-0.12, 0.03, 0.004, -0.003)
    truth = write_nerfstudio(tmp_path / "ns", distortion=dist)
    clip = Clip.load(convert("nerfstudio", tmp_path / "ns", tmp_path / "clip"))
    views = clip.views()
    for i, t in enumerate(truth):
        expected = ideal_pattern_image(t["K"], W, H)
        got = views.images[i].double().numpy()
        # compare away from the border (where the source may fall outside the distorted image)
        err = np.abs(got - expected)[6:-6, 6:-6]
        assert err.max() < 0.03, err.max()
        # and the raw distorted image is far from the ideal one (the test has teeth)
        raw = np.asarray(Image.open(t["path"]), dtype=np.float64) / 255
        assert np.abs(raw - expected)[6:-6, 6:-6].max() > 0.1


def test_nerfstudio_rejects_fisheye(tmp_path):
    write_nerfstudio(tmp_path / "ns")
    meta = json.loads((tmp_path / "ns" / "transforms.json").read_text())
    meta["camera_model"] = "OPENCV_FISHEYE"
    (tmp_path / "ns" / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(ValidationError, match="OPENCV_FISHEYE"):
        convert("nerfstudio", tmp_path / "ns", tmp_path / "clip")
    assert not (tmp_path / "clip").exists()


# ---------------------------------------------------------------------------- COLMAP

COLMAP_MODELS = {"SIMPLE_PINHOLE": (0, 3), "PINHOLE": (1, 4), "OPENCV": (4, 8)}


def colmap_scene():
    cams = {
        1: ("SIMPLE_PINHOLE", W, H, [55.0, 31.0, 25.0]),
        2: ("PINHOLE", W, H, [52.0, 54.0, 33.0, 23.5]),
        3: ("OPENCV", W, H, [50.0, 51.0, 32.5, 24.5, -0.1, 0.02, 0.003, -0.002]),
    }
    images = {}
    for i, (eye, cid) in enumerate(zip(EYES, (1, 2, 3))):
        c2w = look_at_cv(eye, TARGET)
        w2c = np.linalg.inv(c2w)
        images[10 + i] = (rot_to_quat(w2c[:3, :3]), w2c[:3, 3], cid, f"im_{i}.png")
    points = np.array([[0.3, -0.2, 0.5], [0.0, 0.0, 0.0], [0.5, 0.4, 0.9], [-0.2, 0.1, 0.3]])
    return cams, images, points


def write_colmap_bin(d: Path, cams, images, points):
    d.mkdir(parents=True)
    with open(d / "cameras.bin", "wb") as f:
        f.write(struct.pack("<Q", len(cams)))
        for cid, (model, w, h, params) in cams.items():
            f.write(struct.pack("<iiQQ", cid, COLMAP_MODELS[model][0], w, h))
            f.write(struct.pack(f"<{len(params)}d", *params))
    with open(d / "images.bin", "wb") as f:
        f.write(struct.pack("<Q", len(images)))
        for iid, (q, t, cid, name) in images.items():
            f.write(struct.pack("<i4d3di", iid, *q, *t, cid))
            f.write(name.encode() + b"\x00")
            f.write(struct.pack("<Q", 2))
            f.write(struct.pack("<ddq", 1.0, 2.0, -1) + struct.pack("<ddq", 3.0, 4.0, 0))
    with open(d / "points3D.bin", "wb") as f:
        f.write(struct.pack("<Q", len(points)))
        for pid, p in enumerate(points):
            f.write(struct.pack("<Q3d3Bd", pid, *p, 200, 100, 50, 0.5))
            f.write(struct.pack("<Q", 2) + struct.pack("<ii", 10, 0) + struct.pack("<ii", 11, 1))


def write_colmap_txt(d: Path, cams, images, points):
    d.mkdir(parents=True)
    lines = [
        "# Camera list",
        *[f"{cid} {m} {w} {h} " + " ".join(repr(float(x)) for x in p) for cid, (m, w, h, p) in cams.items()],
    ]
    (d / "cameras.txt").write_text("\n".join(lines) + "\n")
    lines = ["# Image list"]
    for iid, (q, t, cid, name) in images.items():
        lines.append(f"{iid} " + " ".join(repr(float(x)) for x in [*q, *t]) + f" {cid} {name}")
        lines.append("1.0 2.0 -1 3.0 4.0 0")
    (d / "images.txt").write_text("\n".join(lines) + "\n")
    lines = ["# 3D point list"] + [
        f"{i} {float(p[0])!r} {float(p[1])!r} {float(p[2])!r} 200 100 50 0.5 10 0 11 1"
        for i, p in enumerate(points)
    ]
    (d / "points3D.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("variant", ["bin", "txt"])
def test_colmap_known_poses(tmp_path, variant):
    cams, images, points = colmap_scene()
    proj = tmp_path / "proj"
    (write_colmap_bin if variant == "bin" else write_colmap_txt)(proj / "sparse" / "0", cams, images, points)
    (proj / "images").mkdir()
    for iid, (_, _, cid, name) in images.items():
        model, w, h, params = cams[cid]
        rng = np.random.default_rng(iid)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(proj / "images" / name)
    clip = Clip.load(convert("colmap", proj, tmp_path / "clip"))
    assert clip.num_frames == 1 and clip.camera_names == ["img00000", "img00001", "img00002"]
    # world-frame points kept exactly (float32)
    torch.testing.assert_close(clip.lidar(0).double(), torch.from_numpy(points), atol=1e-6, rtol=0)
    expected_K = [
        [[55.0, 0, 31.0], [0, 55.0, 25.0], [0, 0, 1]],
        [[52.0, 0, 33.0], [0, 54.0, 23.5], [0, 0, 1]],
        [[50.0, 0, 32.5], [0, 51.0, 24.5], [0, 0, 1]],
    ]
    views = clip.views()
    for i, (_, (q, t, _, _)) in enumerate(sorted(images.items())):
        np.testing.assert_allclose(clip.camera(f"img{i:05d}").K, expected_K[i])
        # hand-computed camera-to-world: the inverse of COLMAP's world-to-camera
        np.testing.assert_allclose(
            clip.cam_to_world(0, f"img{i:05d}"), look_at_cv(EYES[i], TARGET), atol=1e-9
        )
        # every 3D point projects where COLMAP's own model (x_cam = R(q) x + t) puts it
        K = np.asarray(expected_K[i])
        w2c = views.cameras.world_to_cam[i].double().numpy()
        Kv = views.cameras.K[i].double().numpy()
        for X in points:
            pc = quat_to_rot_ref(q) @ X + np.asarray(t)
            pv = w2c[:3, :3] @ X + w2c[:3, 3]
            assert pc[2] > 0
            np.testing.assert_allclose(Kv @ pv / pv[2], K @ pc / pc[2], atol=1e-4)
    # the OPENCV camera's image was undistorted (not copied); the pinhole ones were copied
    assert clip.image_path(0, "img00000").read_bytes() == (proj / "images" / "im_0.png").read_bytes()
    assert clip.image_path(0, "img00002").read_bytes() != (proj / "images" / "im_2.png").read_bytes()


def test_colmap_undistortion_matches_pattern(tmp_path):
    cams, images, points = colmap_scene()
    proj = tmp_path / "proj"
    write_colmap_bin(proj / "sparse" / "0", cams, images, points)
    (proj / "images").mkdir()
    for _, (_, _, cid, name) in images.items():
        model, w, h, params = cams[cid]
        K = (
            np.asarray([[params[0], 0, params[2]], [0, params[1], params[3]], [0, 0, 1]])
            if model != "SIMPLE_PINHOLE"
            else None
        )
        if model == "OPENCV":
            Image.fromarray(distorted_pattern_image(K, params[4:], w, h)).save(proj / "images" / name)
        else:
            Image.new("RGB", (w, h)).save(proj / "images" / name)
    clip = Clip.load(convert("colmap", proj / "sparse" / "0", tmp_path / "clip", images=proj / "images"))
    v = clip.views(cameras=["img00002"])
    K = clip.camera("img00002").K
    err = np.abs(v.images[0].double().numpy() - ideal_pattern_image(K, W, H))[6:-6, 6:-6]
    assert err.max() < 0.03, err.max()


def test_colmap_rejects_unsupported_model_and_truncation(tmp_path):
    cams, images, points = colmap_scene()
    cams[3] = ("OPENCV_FISHEYE", W, H, [50.0, 51.0, 32.5, 24.5, 0.1, 0.0, 0.0, 0.0])
    COLMAP_MODELS["OPENCV_FISHEYE"] = (5, 8)
    proj = tmp_path / "proj"
    write_colmap_bin(proj / "sparse" / "0", cams, images, points)
    (proj / "images").mkdir()
    for _, (_, _, _, name) in images.items():
        Image.new("RGB", (W, H)).save(proj / "images" / name)
    with pytest.raises(ValidationError, match="OPENCV_FISHEYE is not supported"):
        convert("colmap", proj, tmp_path / "clip")
    data = (proj / "sparse" / "0" / "images.bin").read_bytes()
    (proj / "sparse" / "0" / "images.bin").write_bytes(data[:40])
    with pytest.raises(FormatError, match="images.bin: file is truncated"):
        convert("colmap", proj, tmp_path / "clip")
    assert not (tmp_path / "clip").exists()


def test_unknown_converter_kind(tmp_path, capsys):
    with pytest.raises(ValidationError, match="unknown converter kind 'kitti'; available: dgp, nuscenes"):
        convert("kitti", tmp_path, tmp_path / "out")
    from splatnet.cli import main

    assert main(["convert", "kitti", str(tmp_path), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "unknown converter kind 'kitti'" in err and "colmap" in err
    assert not (tmp_path / "out").exists()


def quat_to_rot_ref(q):
    """Rotation of a (possibly unnormalised) quaternion, homogeneous form (independent of _geom)."""
    w, x, y, z = np.asarray(q) / np.linalg.norm(q)
    return np.array(
        [
            [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z],
        ]
    )
