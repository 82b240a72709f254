"""Clip loader/writer refusals of hostile or nonsensical input: every one a single clear error.

Each test copies the bundled sample clip (``examples/data/sample_clip``) to a temporary
directory and corrupts it; the expected messages name the file (and field) at fault.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from splatnet.clip import CameraSpec, Clip, FrameSpec, LidarSpec, write_clip
from splatnet.clip import _checks as C
from splatnet.errors import FormatError, ValidationError

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "sample_clip"


@pytest.fixture
def clip_dir(tmp_path) -> Path:
    dst = tmp_path / "clip"
    shutil.copytree(SAMPLE, dst)
    return dst


@pytest.fixture(scope="module")
def sample() -> Clip:
    return Clip.load(SAMPLE)


def _edit(path: Path, edit) -> None:
    m = json.loads((path / "clip.json").read_text())
    edit(m)
    (path / "clip.json").write_text(json.dumps(m))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` 8-bit RGB; its data holds one row only.

    Readers that trust the header before decoding see a huge image without anyone paying for
    one; PIL opens it lazily and refuses it as a decompression bomb.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * width))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# ------------------------------------------------------------------ 3: intrinsics range


@pytest.mark.parametrize(
    "entry, value", [((0, 0), 1e300), ((1, 1), 1e-300), ((0, 2), 1e300), ((1, 2), -1e300)]
)
def test_reject_intrinsics_out_of_range(clip_dir, entry, value):
    _edit(clip_dir, lambda m: m["cameras"][2]["K"][entry[0]].__setitem__(entry[1], value))
    with pytest.raises(ValidationError, match=r"clip\.json: camera 'cam_back_left'\.K: .*(focal|principal)"):
        Clip.load(clip_dir)


def test_intrinsics_limits_are_relative_to_the_image(clip_dir):
    # 448 px wide: fx = 0.5 px (a 179.7-degree field of view) still loads; 0.4 px does not.
    _edit(clip_dir, lambda m: m["cameras"][0]["K"][0].__setitem__(0, 0.5))
    Clip.load(clip_dir)
    _edit(clip_dir, lambda m: m["cameras"][0]["K"][0].__setitem__(0, 0.4))
    with pytest.raises(ValidationError, match=r"camera 'cam_front'\.K: fx = 0\.4 px"):
        Clip.load(clip_dir)


def test_writer_rejects_intrinsics_out_of_range(tmp_path):
    K = np.array([[1e300, 0, 16.0], [0, 30.0, 12.0], [0, 0, 1]])
    cam = CameraSpec("front", K, 32, 24, np.eye(4))
    img = np.zeros((24, 32, 3), np.uint8)
    with pytest.raises(ValidationError, match=r"cameras\[0\]\.K: fx = 1e\+300 px"):
        write_clip(tmp_path / "c", [cam], [FrameSpec(0.0, np.eye(4))], {(0, "front"): img})
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------------------ 4: nesting depth


def test_reject_deeply_nested_manifest(clip_dir):
    (clip_dir / "clip.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FormatError, match=r"clip\.json: JSON nested deeper than 64 levels"):
        Clip.load(clip_dir)


def test_reject_deep_metadata_but_keep_moderate_nesting(clip_dir):
    def nest(depth: int):
        obj: object = 1
        for _ in range(depth):
            obj = {"a": obj}
        return obj

    _edit(clip_dir, lambda m: m.__setitem__("metadata", nest(40)))
    assert Clip.load(clip_dir).metadata == nest(40)
    _edit(clip_dir, lambda m: m.__setitem__("metadata", nest(200)))  # parses, but over the limit
    with pytest.raises(FormatError, match=r"clip\.json: JSON nested deeper than 64 levels"):
        Clip.load(clip_dir)


def test_writer_rejects_deep_metadata(tmp_path):
    deep: object = 0
    for _ in range(5000):
        deep = [deep]
    cam = CameraSpec("front", np.array([[30.0, 0, 16], [0, 30, 12], [0, 0, 1]]), 32, 24, np.eye(4))
    with pytest.raises(ValidationError, match=r"write_clip\(metadata\): .*nested deeper than 64"):
        write_clip(
            tmp_path / "c",
            [cam],
            [FrameSpec(0.0, np.eye(4))],
            {(0, "front"): np.zeros((24, 32, 3), np.uint8)},
            metadata={"x": deep},
        )
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------------------ 5: image size limit


def test_reject_huge_image_from_its_header(clip_dir):
    (clip_dir / "images" / "cam_back" / "000001.png").write_bytes(_png_header_only(30000, 30000))
    _edit(clip_dir, lambda m: m["frames"][1]["images"].update(cam_back="images/cam_back/000001.png"))
    with pytest.raises(ValidationError) as err:
        Clip.load(clip_dir)
    msg = str(err.value)
    assert "000001.png: image is 30000x30000" in msg and "16384" in msg, msg


def test_reject_huge_image_matching_its_camera(clip_dir):
    # The camera claims the huge size too, so only the limit stops the decoder's bomb check.
    _edit(clip_dir, lambda m: m["cameras"][0].update(width=30000, height=30000))
    for f in range(3):
        (clip_dir / "images" / "cam_front" / f"{f:06d}.png").write_bytes(_png_header_only(30000, 30000))
    _edit(clip_dir, lambda m: [fr["images"].update(cam_front=f"images/cam_front/{i:06d}.png")
                               for i, fr in enumerate(m["frames"])])
    _edit(clip_dir, lambda m: [fr.get("depths", {}).pop("cam_front", None) for fr in m["frames"]])
    _edit(clip_dir, lambda m: [fr.get("sky_masks", {}).pop("cam_front", None) for fr in m["frames"]])
    with pytest.raises(ValidationError, match=r"cam_front/000000\.png: image is 30000x30000 "
                                              r"\(900\.0 MP\).*16384 px a side"):
        Clip.load(clip_dir)


@pytest.mark.parametrize("reader", ["read_rgb", "read_mask", "read_png16"])
def test_decoders_refuse_huge_image_before_decoding(tmp_path, reader):
    from splatnet.clip import _files

    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(30000, 30000))
    with pytest.raises(ValidationError, match=r"bomb\.png: image is 30000x30000.*limit"):
        getattr(_files, reader)(p)


def test_image_limit_allows_the_largest_size():
    C.check_image_size(16384, 4096, "x")  # 64 MP exactly
    with pytest.raises(ValidationError, match="16385x1"):
        C.check_image_size(16385, 1, "x")
    with pytest.raises(ValidationError, match=r"16384x4097 \(67\.1 MP\)"):
        C.check_image_size(16384, 4097, "x")


def test_writer_rejects_camera_beyond_image_limit(tmp_path):
    cam = CameraSpec("front", np.array([[3e4, 0, 1e4], [0, 3e4, 1e4], [0, 0, 1]]), 20000, 20000, np.eye(4))
    with pytest.raises(ValidationError, match=r"cameras\[0\]: image size 20000x20000"):
        write_clip(tmp_path / "c", [cam], [FrameSpec(0.0, np.eye(4))], {(0, "front"): "unused.png"})


# ------------------------------------------------------------------ 14: numbers only


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m["frames"][1]["ego_to_world"][0].__setitem__(3, "1"),
         r"frames\[1\]\.ego_to_world: entry \[0\]\[3\] must be a number, got '1'"),
        (lambda m: m["frames"][0]["ego_to_world"][0].__setitem__(0, True),
         r"frames\[0\]\.ego_to_world: entry \[0\]\[0\] must be a number, got True"),
        (lambda m: m["cameras"][1]["cam_to_ego"][2].__setitem__(3, "1.6"),
         r"camera 'cam_front_left'\.cam_to_ego: entry \[2\]\[3\] must be a number"),
        (lambda m: m["cameras"][1]["K"][2].__setitem__(2, "1"),
         r"camera 'cam_front_left'\.K: entry \[2\]\[2\] must be a number"),
        (lambda m: m["frames"][0]["ego_to_world"].__setitem__(1, "0100"),
         r"frames\[0\]\.ego_to_world: row 1 must be a list of numbers"),
        (lambda m: m["frames"][0]["ego_to_world"][2].__setitem__(2, None),
         r"entry \[2\]\[2\] must be a number, got None"),
    ],
)
def test_reject_non_numeric_matrix_entries(clip_dir, edit, match):
    _edit(clip_dir, edit)
    with pytest.raises(ValidationError, match=match):
        Clip.load(clip_dir)


def test_writer_rejects_string_and_bool_matrices(tmp_path):
    img = {(0, "front"): np.zeros((24, 32, 3), np.uint8)}
    K = [[30.0, 0, "16"], [0, 30.0, 12.0], [0, 0, 1]]
    with pytest.raises(ValidationError, match=r"cameras\[0\]\.K: .*must be a number"):
        write_clip(
            tmp_path / "c", [CameraSpec("front", K, 32, 24, np.eye(4))], [FrameSpec(0.0, np.eye(4))], img
        )
    K = np.array([[30.0, 0, 16], [0, 30, 12], [0, 0, 1]])
    with pytest.raises(ValidationError, match=r"frames\[0\]\.ego_to_world: .*bool"):
        write_clip(tmp_path / "c", [CameraSpec("front", K, 32, 24, np.eye(4))],
                   [FrameSpec(0.0, np.eye(4, dtype=bool))], img)
    with pytest.raises(ValidationError, match=r"frames\[0\]\.ego_to_world: .*bool"):
        write_clip(tmp_path / "c", [CameraSpec("front", K, 32, 24, np.eye(4))],
                   [FrameSpec(0.0, torch.eye(4, dtype=torch.bool))], img)
    # numeric arrays and tensors of any real dtype stay fine
    write_clip(tmp_path / "c", [CameraSpec("front", torch.tensor(K), 32, 24, np.eye(4, dtype=np.int64))],
               [FrameSpec(0.0, torch.eye(4, dtype=torch.float32))], img)


# ------------------------------------------------------------------ 15: coordinate range


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m["cameras"][0]["cam_to_ego"][0].__setitem__(3, 1e20),
         r"camera 'cam_front'\.cam_to_ego: translation .*1e\+20.*limit 1e\+06 m"),
        (lambda m: m["frames"][2]["ego_to_world"][1].__setitem__(3, 2e6),
         r"frames\[2\]\.ego_to_world: .*2e\+06 m from the clip's world origin.*limit 1e\+06 m"),
        (lambda m: m["frames"][1].__setitem__(
            "camera_ego_to_world", {"cam_back": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, -5e6], [0, 0, 0, 1]]}),
         r"frames\[1\]\.camera_ego_to_world\['cam_back'\]: .*5e\+06 m"),
        (lambda m: m["frames"][0]["lidar"].__setitem__(
            "ego_to_world", [[1, 0, 0, 3e6], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
         r"frames\[0\]\.lidar\.ego_to_world: .*3e\+06 m"),
    ],
)
def test_reject_poses_far_from_origin(clip_dir, edit, match):
    _edit(clip_dir, edit)
    with pytest.raises(ValidationError, match=match):
        Clip.load(clip_dir)


def test_camera_centre_far_away_is_rejected(clip_dir):
    # Each pose alone is within range, their composition is not.
    def edit(m):
        m["cameras"][3]["cam_to_ego"][0][3] = 9e5
        m["frames"][1]["ego_to_world"][0][3] = 9e5

    _edit(clip_dir, edit)
    with pytest.raises(ValidationError, match=r"frames\[1\]: camera 'cam_back' is 1\.8e\+06 m from"):
        Clip.load(clip_dir)


def test_large_absolute_poses_are_fine_with_first_ego(clip_dir, sample):
    # UTM-like coordinates: 5000 km from the log's origin, re-expressed relative to frame 0.
    def shift(m):
        poses = [fr["ego_to_world"] for fr in m["frames"]]
        poses += [e["box_to_world"] for a in m.get("actors", []) for e in a["track"]]
        for T in poses:  # the actors' boxes are in the same frame as the ego poses
            T[0][3] += 5e6
            T[1][3] -= 4e6

    _edit(clip_dir, shift)
    clip = Clip.load(clip_dir)
    torch.testing.assert_close(clip.ego_to_world, sample.ego_to_world, atol=1e-8, rtol=0)
    assert len(clip.actors) == len(sample.actors) > 0
    for a, b in zip(clip.actors, sample.actors):
        np.testing.assert_allclose(a.box_to_world, b.box_to_world, atol=1e-8, rtol=0)
    # ...but not when the clip keeps the poses' own frame, where float32 would lose ~0.5 m.
    _edit(clip_dir, lambda m: m.__setitem__("world_frame", "poses"))
    with pytest.raises(ValidationError, match=r"frames\[0\]\.ego_to_world: .*world_frame 'first_ego'"):
        Clip.load(clip_dir)


def test_lidar_points_far_away_or_nonfinite(clip_dir, sample):
    good = np.load(clip_dir / "lidar" / "000001.npy")
    bad = good.copy()
    bad[7] = [2e6, 0, 0]
    np.save(clip_dir / "lidar" / "000001.npy", bad)
    clip = Clip.load(clip_dir)  # headers are fine; the values are read with the points
    torch.testing.assert_close(clip.lidar(0), sample.lidar(0))
    with pytest.raises(ValidationError, match=r"000001\.npy: 1 of \d+ points .*limit 1e\+06 m"):
        clip.lidar(1)
    bad[7] = [np.nan, 0, 0]
    np.save(clip_dir / "lidar" / "000001.npy", bad)
    with pytest.raises(ValidationError, match=r"000001\.npy: 1 of \d+ points .*NaN or infinite"):
        clip.lidar(1)
    inten = np.load(clip_dir / "lidar" / "000002_intensity.npy")
    inten[0] = np.inf
    np.save(clip_dir / "lidar" / "000002_intensity.npy", inten)
    with pytest.raises(ValidationError, match=r"000002_intensity\.npy: 1 .*NaN or infinite"):
        clip.lidar_intensity(2)


def test_writer_rejects_far_poses_and_points(tmp_path):
    K = np.array([[30.0, 0, 16], [0, 30, 12], [0, 0, 1]])
    img = {(f, "front"): np.zeros((24, 32, 3), np.uint8) for f in range(2)}
    far = np.eye(4)
    far[0, 3] = 1e20
    cams = [CameraSpec("front", K, 32, 24, np.eye(4))]
    frames = [FrameSpec(0.0, np.eye(4)), FrameSpec(1.0, far)]
    with pytest.raises(ValidationError, match=r"frames\[1\]\.ego_to_world: .*1e\+20 m.*limit 1e\+06 m"):
        write_clip(tmp_path / "c", cams, frames, img)
    with pytest.raises(ValidationError, match=r"cameras\[0\]\.cam_to_ego: translation"):
        write_clip(tmp_path / "c", [CameraSpec("front", K, 32, 24, far)], frames[:1], img)
    pts = np.zeros((4, 3), np.float32)
    pts[2] = [0, 0, 3e6]
    with pytest.raises(ValidationError, match=r"lidar\[1\]: 1 of 4 points .*limit 1e\+06 m"):
        write_clip(tmp_path / "c", cams, [FrameSpec(0.0, np.eye(4)), FrameSpec(1.0, np.eye(4))], img,
                   lidar={1: LidarSpec(pts)})
    # far world-frame points of a far-away log are fine: they are near its first ego pose
    E = np.eye(4)
    E[:3, 3] = [4e6, -3e6, 10]
    near = pts / 1e5  # 30 m away
    path = write_clip(tmp_path / "c", cams, [FrameSpec(0.0, E), FrameSpec(1.0, E)], img,
                      lidar={1: LidarSpec(near + E[:3, 3], frame="world")})
    # float32 storage of ~4e6 m coordinates: 0.25 m quantisation
    torch.testing.assert_close(Clip.load(path).lidar(1), torch.from_numpy(near), atol=0.5, rtol=0)


# ------------------------------------------------------------------ 17: Clip method arguments


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"frames": [1.7]}, r"views\(frames\): frame index must be an int, got 1\.7"),
        ({"frames": ["0"]}, r"views\(frames\): frame index must be an int, got '0'"),
        ({"frames": [True]}, r"views\(frames\): frame index must be an int, got True"),
        ({"frames": "01"}, r"views\(frames\): expected a list of frame indices, got str"),
        ({"frames": np.array([0.0, 1.0])}, r"frame index must be an int, got "),
        ({"frames": torch.tensor([True])}, r"frame index must be an int, got "),
        ({"frames": {0: 1}}, r"views\(frames\): expected a list of frame indices, got dict"),
        ({"frames": [5]}, r"frame 5 out of range \[0, 3\)"),
        ({"roles": "rigg"}, r"views\(roles\): must be one of \['rig', 'target'\], got 'rigg'"),
        ({"roles": []}, r"views\(roles\): select at least one role"),
        ({"roles": 3}, r"views\(roles\): expected a role or a list of roles, got int"),
        ({"cameras": [5]}, r"views\(cameras\): camera names must be strings, got 5"),
        ({"cameras": 5}, r"views\(cameras\): expected a camera name or a list of names, got int"),
        ({"size": 5}, r"views\(size\): expected \(H, W\) positive ints, got 5"),
        ({"size": (0, 10)}, r"views\(size\): expected \(H, W\) positive ints"),
        ({"size": (256.0, 448)}, r"views\(size\): expected \(H, W\) positive ints"),
        ({"size": (100_000, 100_000)}, r"views\(size\) 100000x100000: too large: .*8192"),
        ({"size": (4097, 4097)}, r"views\(size\) 4097x4097: too large: .*pixels"),
        ({"num_workers": 0}, r"views\(num_workers\): expected a positive int or None, got 0"),
        ({"num_workers": "2"}, r"views\(num_workers\): expected a positive int or None, got '2'"),
    ],
)
def test_views_argument_errors(sample, kwargs, match):
    with pytest.raises(ValidationError, match=match):
        sample.views(**kwargs)


def test_views_argument_forms_that_work(sample):
    ref = sample.views(frames=[0, 2], size=(32, 56))
    for frames in ([0, 2], (0, 2), np.array([0, 2]), torch.tensor([0, 2]), [np.int64(0), -1], range(0, 3, 2)):
        v = sample.views(frames=frames, size=(32, 56))
        assert v.frame_ids.tolist() == ref.frame_ids.tolist()
        assert torch.equal(v.images, ref.images)
    assert sample.views(frames=1, size=(32, 56)).frame_ids.tolist() == [1] * 6
    # a bare string is one role, not a sequence of letters
    assert sample.views(frames=[0], roles="target", size=(32, 56)).camera_names == ["target_0", "target_1"]
    assert sample.views(frames=[0], roles="rig", size=(32, 56)).camera_names == sample.rig_camera_names
    assert sample.views(frames=[0], cameras="cam_back", size=(32, 56)).camera_names == ["cam_back"]


def test_other_clip_method_arguments(sample):
    with pytest.raises(ValidationError, match=r"camera name must be a string, got \['cam_front'\]"):
        sample.camera(["cam_front"])
    with pytest.raises(ValidationError, match="frame index must be an int, got 0.5"):
        sample.cam_to_world(0.5, "cam_front")
    with pytest.raises(ValidationError, match="frame index must be an int, got '1'"):
        sample.lidar("1")
    with pytest.raises(ValidationError, match="frame index must be an int, got True"):
        sample.lidar_intensity(True)
    with pytest.raises(ValidationError, match="unknown camera 'nope'"):
        sample.image_timestamp(0, "nope")
    c2w = sample.cam_to_world(1, "cam_front")
    assert np.array_equal(sample.cam_to_world(torch.tensor(1), "cam_front"), c2w)
    with pytest.raises(ValidationError, match=r"Clip\.load\(path\): expected a path, got NoneType"):
        Clip.load(None)
    with pytest.raises(ValidationError, match=r"Clip\.load\(num_workers\): expected a positive int"):
        Clip.load(SAMPLE, num_workers=-1)


def test_clip_json_path_is_a_clip(clip_dir, tmp_path):
    from splatnet.clip.clip import is_clip

    assert Clip.load(clip_dir / "clip.json").num_frames == 3
    assert is_clip(clip_dir) and is_clip(clip_dir / "clip.json") and is_clip(str(clip_dir / "clip.json"))
    assert not is_clip(tmp_path) and not is_clip(tmp_path / "missing") and not is_clip(clip_dir / "images")
    other = tmp_path / "other.json"
    other.write_text("{}")
    assert not is_clip(other)



def test_reject_number_too_long_for_python(clip_dir):
    # Python refuses to convert integers over 4300 digits with a bare ValueError.
    text = (clip_dir / "clip.json").read_text()
    text = re.sub(r'"version": [0-9.]+', '"version": 1' + "0" * 5000, text, count=1)
    (clip_dir / "clip.json").write_text(text)
    with pytest.raises(FormatError, match=r"clip\.json: not valid JSON \(.*digits"):
        Clip.load(clip_dir)
