"""Clip format v1: writer → loader round trips, geometry of views, and rejection of bad clips."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import splatnet
from splatnet.clip import CameraSpec, Clip, FrameSpec, LidarSpec, write_clip
from splatnet.errors import FormatError, ValidationError

H, W = 24, 32


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def pose(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


# OpenCV camera looking along ego +x (ego: x forward, y left, z up).
CAM_FWD = np.array([[0, 0, 1.0], [-1, 0, 0], [0, -1, 0]])


def make_clip_inputs(seed: int = 0, n_frames: int = 3):
    rng = np.random.default_rng(seed)
    K = np.array([[30.0, 0, 16.0], [0, 28.0, 12.0], [0, 0, 1]])
    cams = [
        CameraSpec("front", K, W, H, pose(CAM_FWD, [1.5, 0.0, 1.6])),
        CameraSpec(
            "left", K * [[1.1], [1.1], [1]], W, H, pose(rot_z(math.pi / 2) @ CAM_FWD, [0.5, 0.9, 1.6])
        ),
        CameraSpec("extra", K, W, H, pose(rot_z(0.3) @ CAM_FWD, [1.5, 1.2, 1.6]), role="target"),
    ]
    # Absolute, far-away world poses with large Unix timestamps (like a real log).
    frames = [
        FrameSpec(
            1.7e9 + 0.1 * i,
            pose(rot_z(0.2 + 0.05 * i), [4000.0 + 1.3 * i, -2500.0 + 0.2 * i, 12.0]),
            camera_timestamps={"left": 1.7e9 + 0.1 * i + 0.02},
            camera_ego_to_world={"left": pose(rot_z(0.21 + 0.05 * i), [4000.2 + 1.3 * i, -2500.0, 12.0])},
        )
        for i in range(n_frames)
    ]
    images = {
        (f, c.name): rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for f in range(n_frames) for c in cams
    }
    depths = {(f, "front"): rng.uniform(0.5, 80.0, (H, W)).astype(np.float32) for f in range(n_frames)}
    depths[(0, "front")][:3] = 0.0
    sky = {(1, "left"): rng.random((H, W)) > 0.5}
    mask = np.ones((H, W), bool)
    mask[-4:] = False
    lidar = [
        LidarSpec(
            rng.normal(size=(50, 3)).astype(np.float32) * 10, intensity=rng.random(50).astype(np.float32)
        ),
        None,
        LidarSpec(rng.normal(size=(20, 3)).astype(np.float32) * 10 + [4000, -2500, 10], frame="world"),
    ][:n_frames]
    return cams, frames, images, depths, sky, {"front": mask}, lidar


@pytest.fixture
def clip_inputs():
    return make_clip_inputs()


@pytest.fixture
def written(tmp_path, clip_inputs):
    cams, frames, images, depths, sky, masks, lidar = clip_inputs
    path = write_clip(
        tmp_path / "clip",
        cams,
        frames,
        images,
        lidar=lidar,
        depths=depths,
        masks=masks,
        sky_masks=sky,
        metadata={"cars": [{"id": 1, "velocity": [1.0, 0.5, 0.0]}]},
        image_format="png",
        depth_format="npy",
    )
    return path


def test_round_trip_views_identical(written, clip_inputs):
    cams, frames, images, depths, sky, masks, lidar = clip_inputs
    clip = Clip.load(written)
    assert clip.camera_names == ["front", "left", "extra"]
    assert clip.rig_camera_names == ["front", "left"] and clip.target_camera_names == ["extra"]
    assert clip.num_frames == 3
    assert clip.metadata == {"cars": [{"id": 1, "velocity": [1.0, 0.5, 0.0]}]}
    assert clip.time_origin == 1.7e9
    torch.testing.assert_close(
        clip.timestamps, torch.tensor([0.0, 0.1, 0.2], dtype=torch.float64), atol=1e-6, rtol=0
    )

    views = clip.views(roles=("rig", "target"))
    assert len(views) == 9
    assert views.camera_names == ["front", "left", "extra"] * 3
    assert views.roles == ["rig", "rig", "target"] * 3
    assert views.frame_ids.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert views.images.shape == (9, H, W, 3) and views.images.dtype == torch.float32
    E0_inv = np.linalg.inv(frames[0].ego_to_world)
    for v in range(9):
        f, name = int(views.frame_ids[v]), views.camera_names[v]
        cam = next(c for c in cams if c.name == name)
        expected = torch.from_numpy(images[(f, name)]).float() / 255
        assert torch.equal(views.images[v], expected)  # PNG: lossless
        ego = frames[f].camera_ego_to_world.get(name, frames[f].ego_to_world)
        c2w = E0_inv @ np.asarray(ego) @ cam.cam_to_ego  # float64 reference
        torch.testing.assert_close(
            views.cameras.cam_to_world[v].double(), torch.from_numpy(c2w), atol=2e-5, rtol=0
        )
        torch.testing.assert_close(views.cameras.K[v].double(), torch.as_tensor(np.asarray(cam.K, float)))
        t = frames[f].camera_timestamps.get(name, frames[f].timestamp) - 1.7e9
        assert abs(float(views.cameras.timestamps[v]) - t) < 1e-6
    assert views.cameras.names == views.camera_names
    # depth: npy is exact; only 'front' has depth, other views are 0
    assert views.depths is not None and views.depths.shape == (9, H, W, 1)
    for v in range(9):
        f, name = int(views.frame_ids[v]), views.camera_names[v]
        ref = depths.get((f, name), np.zeros((H, W), np.float32))
        assert torch.equal(views.depths[v, ..., 0], torch.from_numpy(ref))
    assert views.sky_masks is not None
    assert torch.equal(views.sky_masks[4, ..., 0], torch.from_numpy(sky[(1, "left")]))
    assert not views.sky_masks[0].any()
    assert views.masks is not None
    assert torch.equal(views.masks[0, ..., 0], torch.from_numpy(masks["front"]))
    assert views.masks[1].all()


def test_round_trip_lidar_world_frame(written, clip_inputs):
    cams, frames, images, depths, sky, masks, lidar = clip_inputs
    clip = Clip.load(written)
    E0_inv = np.linalg.inv(frames[0].ego_to_world)
    # frame 0: ego-frame points
    T = E0_inv @ frames[0].ego_to_world
    ref = lidar[0].points.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    got = clip.lidar(0)
    assert got.dtype == torch.float32 and got.shape == (50, 3)
    torch.testing.assert_close(got.double(), torch.from_numpy(ref), atol=1e-5, rtol=0)
    torch.testing.assert_close(clip.lidar_intensity(0), torch.from_numpy(lidar[0].intensity))
    assert clip.lidar(1) is None and clip.lidar_intensity(1) is None
    # frame 2: world-frame points (stored in the pose frame, re-expressed relative to ego 0)
    ref2 = lidar[2].points.astype(np.float64) @ E0_inv[:3, :3].T + E0_inv[:3, 3]
    # float32 storage of ~4000 m coordinates: ~0.5 mm quantisation
    torch.testing.assert_close(clip.lidar(2).double(), torch.from_numpy(ref2), atol=1e-3, rtol=0)


def test_default_views_exclude_targets_and_select(written):
    clip = Clip.load(written)
    v = clip.views()
    assert v.camera_names == ["front", "left"] * 3
    v = clip.views(roles=("target",))
    assert v.camera_names == ["extra"] * 3
    v = clip.views(frames=[2, 0], cameras=["extra", "front"])
    assert v.camera_names == ["extra", "front", "extra", "front"]
    assert v.frame_ids.tolist() == [2, 2, 0, 0]
    assert v.depths is not None and v.sky_masks is None
    with pytest.raises(ValidationError, match="unknown camera 'nope'"):
        clip.views(cameras=["nope"])
    with pytest.raises(ValidationError, match="out of range"):
        clip.views(frames=[3])


def test_world_frame_is_first_ego_pose(written):
    clip = Clip.load(written)
    torch.testing.assert_close(clip.ego_to_world[0], torch.eye(4, dtype=torch.float64), atol=1e-12, rtol=0)
    # 'front' camera centre of frame 0 is its cam_to_ego translation
    v = clip.views(frames=[0], cameras=["front"])
    torch.testing.assert_close(v.cameras.centers[0], torch.tensor([1.5, 0.0, 1.6]), atol=1e-5, rtol=0)


def test_resize_scales_intrinsics_pixel_centre(written):
    clip = Clip.load(written)
    v = clip.views(frames=[0], cameras=["front"], size=(12, 48))
    assert v.images.shape == (1, 12, 48, 3)
    assert v.cameras.width == 48 and v.cameras.height == 12
    # fx, cx scale by 48/32 = 1.5; fy, cy by 12/24 = 0.5 (hand-computed)
    torch.testing.assert_close(v.cameras.K[0], torch.tensor([[45.0, 0, 24.0], [0, 14.0, 6.0], [0, 0, 1]]))
    # a point projecting to pixel centre (u, v) lands at (u*1.5, v*0.5) after resizing
    assert v.depths.shape == (1, 12, 48, 1)
    # image content: a downsized constant image stays constant; check value range instead
    assert 0.0 <= float(v.images.min()) and float(v.images.max()) <= 1.0


def test_depth_png16_quantisation(tmp_path, clip_inputs):
    cams, frames, images, depths, *_ = clip_inputs
    path = write_clip(tmp_path / "c", cams, frames, images, depths=depths)
    clip = Clip.load(path)
    v = clip.views(cameras=["front"])
    ref = torch.from_numpy(np.stack([depths[(f, "front")] for f in range(3)]))
    err = (v.depths[..., 0] - ref).abs().max()
    assert float(err) <= 0.5 / 256 + 1e-6
    assert bool((v.depths[0, :3] == 0).all())
    # JPEG images: lossy but close
    assert (
        float(
            (v.images - torch.from_numpy(np.stack([images[(f, "front")] for f in range(3)])) / 255)
            .abs()
            .mean()
        )
        < 0.1
    )


def test_splatnet_clip_top_level_and_cli_paths(written):
    assert splatnet.Clip is Clip
    clip = splatnet.Clip.load(written / "clip.json")  # the manifest path works too
    assert clip.num_frames == 3


def test_images_from_existing_files_are_copied(tmp_path, written):
    clip = Clip.load(written)
    K = clip.camera("front").K
    cam = CameraSpec("front", K, W, H, np.eye(4))
    imgs = {(f, "front"): clip.image_path(f, "front") for f in range(3)}
    out = write_clip(tmp_path / "copy", [cam], [FrameSpec(float(i), np.eye(4)) for i in range(3)], imgs)
    for f in range(3):
        assert (out / f"images/front/{f:06d}.png").read_bytes() == imgs[(f, "front")].read_bytes()


# ---------------------------------------------------------------------------- writer safety


def test_writer_refuses_existing_and_bad_inputs(tmp_path, clip_inputs):
    cams, frames, images, *_ = clip_inputs
    write_clip(tmp_path / "c", cams, frames, images)
    with pytest.raises(FileExistsError):
        write_clip(tmp_path / "c", cams, frames, images)
    write_clip(
        tmp_path / "c", cams, frames[:2], {k: v for k, v in images.items() if k[0] < 2}, overwrite=True
    )
    assert Clip.load(tmp_path / "c").num_frames == 2
    (tmp_path / "notaclip").mkdir()
    (tmp_path / "notaclip" / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not a clip"):
        write_clip(tmp_path / "notaclip", cams, frames, images, overwrite=True)
    with pytest.raises(ValidationError, match="camera name"):
        write_clip(tmp_path / "d", [CameraSpec("../evil", np.eye(3), W, H, np.eye(4))], frames, images)
    bad = dict(images)
    del bad[(1, "left")]
    with pytest.raises(ValidationError, match="missing image for frame 1, camera 'left'"):
        write_clip(tmp_path / "d", cams, frames, bad)
    nan_frames = list(frames)
    E = np.eye(4)
    E[0, 3] = np.nan
    nan_frames[1] = FrameSpec(frames[1].timestamp, E)
    with pytest.raises(ValidationError, match=r"frames\[1\].ego_to_world.*NaN"):
        write_clip(tmp_path / "d", cams, nan_frames, images)
    # nothing left behind: no clip, no temporary directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "notaclip"]


def test_writer_is_atomic_on_failure(tmp_path, clip_inputs, monkeypatch):
    cams, frames, images, *_ = clip_inputs
    import splatnet.clip.writer as wmod

    calls = {"n": 0}
    real = wmod.encode_image

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full (simulated)")
        return real(*a, **k)

    monkeypatch.setattr(wmod, "encode_image", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_clip(tmp_path / "c", cams, frames, images)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- loader rejections


def _manifest(path: Path) -> dict:
    return json.loads((path / "clip.json").read_text())


def _save(path: Path, m: dict) -> None:
    (path / "clip.json").write_text(json.dumps(m))


def test_reject_truncated_jpeg(tmp_path, clip_inputs):
    cams, frames, images, *_ = clip_inputs
    path = write_clip(tmp_path / "c", cams, frames, images)
    jpg = path / "images/left/000001.jpg"
    data = jpg.read_bytes()
    jpg.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"000001\.jpg.*truncated"):
        Clip.load(path)


def test_reject_truncated_png_and_garbage(written):
    png = written / "images/front/000000.png"
    good = png.read_bytes()
    png.write_bytes(good[:-20])
    with pytest.raises(FormatError, match=r"000000\.png.*truncated"):
        Clip.load(written)
    png.write_bytes(b"hello world, not an image")
    with pytest.raises(FormatError, match="not a JPEG or PNG"):
        Clip.load(written)
    png.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        Clip.load(written)


def test_reject_missing_image(written):
    (written / "images/left/000002.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"000002\.png.*not found.*frames\[2\]\.images\['left'\]"):
        Clip.load(written)


def test_reject_size_mismatch(written, tmp_path):
    from PIL import Image

    Image.new("RGB", (W + 1, H)).save(written / "images/front/000001.png")
    with pytest.raises(ValidationError, match=r"000001\.png: image is 33x24, the camera expects 32x24"):
        Clip.load(written)


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda m: m["frames"][1]["ego_to_world"][0].__setitem__(3, float("nan")),
            r"frames\[1\]\.ego_to_world.*NaN",
        ),
        (
            lambda m: m["cameras"][0]["cam_to_ego"][0].__setitem__(0, 2.0),
            r"camera 'front'\.cam_to_ego.*not rigid",
        ),
        (lambda m: m["frames"][0]["ego_to_world"].__setitem__(3, [0, 0, 1, 1]), "last row"),
        (
            lambda m: m["frames"][0]["images"].__setitem__("ghost", "images/front/000000.png"),
            "unknown camera 'ghost'",
        ),
        (lambda m: m["frames"][0]["images"].pop("left"), r"no image for camera\(s\) \['left'\]"),
        (lambda m: m["cameras"][1].__setitem__("K", [[1, 0, 0], [0, -1, 0], [0, 0, 1]]), "focal lengths"),
        (lambda m: m["frames"][2].__setitem__("timestamp", 1.7e9), "increase strictly"),
        (lambda m: m["cameras"][0].__setitem__("role", "spectator"), "role"),
        (lambda m: m.__setitem__("colour", 1), r"unknown field\(s\) \['colour'\]"),
        (lambda m: m["frames"][0]["lidar"].__setitem__("frame", "sensor"), "lidar.frame"),
    ],
)
def test_reject_bad_manifest(written, edit, match):
    m = _manifest(written)
    edit(m)
    _save(written, m)
    with pytest.raises((ValidationError, FormatError), match=match):
        Clip.load(written)


@pytest.mark.parametrize(
    "version, match",
    [(2, "2; .*newer splatnet"), (0, "0; this splatnet reads versions 1, 1.1$"), ("1", "'1'")]
)
def test_reject_schema_version(written, version, match):
    m = _manifest(written)
    m["version"] = version
    _save(written, m)
    with pytest.raises(FormatError, match=f"unsupported clip format version {match}"):
        Clip.load(written)


def test_reject_wrong_format_and_bad_json(written):
    m = _manifest(written)
    m["format"] = "something-else"
    _save(written, m)
    with pytest.raises(FormatError, match="'format' must be 'splatnet-clip'"):
        Clip.load(written)
    (written / "clip.json").write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        Clip.load(written)
    (written / "clip.json").unlink()
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        Clip.load(written)


def test_reject_dotdot_path(written, tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_bytes((written / "images/front/000000.png").read_bytes())
    m = _manifest(written)
    m["frames"][0]["images"]["front"] = "images/../../outside.png"
    _save(written, m)
    with pytest.raises(FormatError, match=r"contains '\.\.'"):
        Clip.load(written)


def test_reject_absolute_path(written):
    m = _manifest(written)
    m["frames"][0]["images"]["front"] = str((written / "images/front/000000.png").resolve())
    _save(written, m)
    with pytest.raises(FormatError, match="absolute path"):
        Clip.load(written)


def test_reject_symlink_out_of_clip(written, tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "x.png").write_bytes((written / "images/front/000000.png").read_bytes())
    # a symlinked file and a symlinked directory, both leading out
    os.symlink(outside / "x.png", written / "images/front/link.png")
    os.symlink(outside, written / "images/dirlink")
    for rel in ("images/front/link.png", "images/dirlink/x.png"):
        m = _manifest(written)
        m["frames"][0]["images"]["front"] = rel
        _save(written, m)
        with pytest.raises(FormatError, match="outside the clip directory"):
            Clip.load(written)


def test_symlink_inside_clip_is_fine(written):
    os.symlink(written / "images/front/000000.png", written / "images/front/alias.png")
    m = _manifest(written)
    m["frames"][0]["images"]["front"] = "images/front/alias.png"
    _save(written, m)
    assert Clip.load(written).num_frames == 3


def test_reject_bad_lidar_file(written):
    np.save(written / "lidar/000000.npy", np.zeros((5, 4), np.float32))
    with pytest.raises(FormatError, match=r"000000\.npy: LiDAR points must have shape \[M, 3\]"):
        Clip.load(written)
    np.save(written / "lidar/000000.npy", np.zeros((50, 3), np.float32))
    data = (written / "lidar/000000.npy").read_bytes()
    (written / "lidar/000000.npy").write_bytes(data[:-7])
    with pytest.raises(FormatError, match="truncated"):
        Clip.load(written)
    np.save(written / "lidar/000000.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match="Python objects"):
        Clip.load(written)


@pytest.mark.parametrize("full", [(192, 256), (190, 250)])  # divisible by 4, and not
def test_reduced_jpeg_decode_keeps_geometry(tmp_path, full):
    from PIL import Image

    from splatnet.clip._files import read_rgb

    h, w = full
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, np.zeros_like(xx)], -1).astype(np.uint8)
    img[40:80, 150:200] = 255  # an off-centre square: a shift would show
    Image.fromarray(img).save(tmp_path / "a.jpg", quality=95)
    got = read_rgb(tmp_path / "a.jpg", (48, 64)).astype(float)
    ref = np.array(Image.fromarray(img).resize((64, 48), Image.BILINEAR)).astype(float)
    assert np.abs(got - ref).mean() < 3.0


def test_reject_manifest_symlink_out(written, tmp_path):
    outside = tmp_path / "elsewhere.json"
    outside.write_text((written / "clip.json").read_text())
    (written / "clip.json").unlink()
    os.symlink(outside, written / "clip.json")
    with pytest.raises(FormatError, match="symlink leading out"):
        Clip.load(written)


def test_docs_worked_example_loads_as_documented(tmp_path):
    """The JSON example in docs/clip-format.md is a valid clip and means what the text says."""
    from PIL import Image

    doc = (Path(__file__).resolve().parents[2] / "docs" / "clip-format.md").read_text()
    block = doc.split("### Worked example", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    m = json.loads(block)
    root = tmp_path / "example"
    for fr in m["frames"]:
        for rel in fr["images"].values():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (448, 256), (10, 20, 30)).save(root / rel, quality=95)
        for rel in fr.get("depths", {}).values():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((256, 448), 2560, np.uint16)).save(root / rel)
        if "lidar" in fr:
            (root / "lidar").mkdir(exist_ok=True)
            np.save(root / fr["lidar"]["path"], np.array([[10.0, 0.0, 0.0]], np.float32))
            np.save(root / fr["lidar"]["intensity"], np.array([0.5], np.float32))
    for cam in m["cameras"]:
        if "mask" in cam:
            (root / cam["mask"]).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((256, 448), 255, np.uint8)).save(root / cam["mask"])
    (root / "clip.json").write_text(block)
    clip = Clip.load(root)
    assert clip.rig_camera_names == ["front"] and clip.target_camera_names == ["left_offset"]
    v = clip.views(frames=[1], cameras=["front"])
    torch.testing.assert_close(v.cameras.centers[0], torch.tensor([2.5, 0.0, 1.5]))
    torch.testing.assert_close(
        clip.views(cameras=["front"]).cameras.timestamps,
        torch.tensor([0.0, 0.1], dtype=torch.float64),
        atol=1e-6,
        rtol=0,
    )
    assert clip.time_origin == 1700000000.0
    # the front camera looks along ego +x: the world point (10, 0, 1.5) projects at the image
    # centre; in frame 1 the ego is 1 m ahead and the camera 1.5 m ahead of it: depth 7.5 m
    p = v.cameras.world_to_cam[0] @ torch.tensor([10.0, 0.0, 1.5, 1.0])
    torch.testing.assert_close(p[:3], torch.tensor([0.0, 0.0, 7.5]), atol=1e-5, rtol=0)
    v0 = clip.views(frames=[0], cameras=["front"])
    torch.testing.assert_close(v0.depths[0].max(), torch.tensor(10.0))  # 2560 / 256 m
    torch.testing.assert_close(clip.lidar(0), torch.tensor([[10.0, 0.0, 0.0]]))


def test_depth_beyond_png16_range_warns_and_stores_zero(tmp_path, clip_inputs):
    cams, frames, images, *_ = clip_inputs
    d = np.full((H, W), 10.0, np.float32)
    d[0, 0] = 300.0  # > 65535 / 256 m
    with pytest.warns(UserWarning, match="1 depth values beyond 256.0 m"):
        path = write_clip(tmp_path / "c", cams, frames, images, depths={(0, "front"): d})
    v = Clip.load(path).views(frames=[0], cameras=["front"])
    assert float(v.depths[0, 0, 0, 0]) == 0.0 and float(v.depths[0, 1, 1, 0]) == 10.0


def test_reject_bad_mask_and_depth_files(written):
    from PIL import Image

    Image.new("L", (W, H - 1)).save(written / "masks/front.png")
    with pytest.raises(ValidationError, match=r"front\.png: image is 32x23"):
        Clip.load(written)
    Image.new("RGB", (W, H)).save(written / "masks/front.png")
    with pytest.raises(FormatError, match="masks must be 8-bit"):
        Clip.load(written)
    Image.new("L", (W, H)).save(written / "masks/front.png")
    np.save(written / "depths/front/000001.npy", np.zeros((H, W + 1), np.float32))
    with pytest.raises(FormatError, match=r"000001\.npy: depth has shape \[24, 33\]"):
        Clip.load(written)


def test_views_to_device(written):
    v = Clip.load(written).views(frames=[0]).to("cpu")
    assert v.images.device.type == "cpu" and v.cameras.timestamps.dtype == torch.float64
    assert v.camera_names == ["front", "left"] and v.depths is not None
