"""Actor tracks filled by the converters (DGP, PandaSet, nuScenes), checked against the data.

Three independent checks per converter with real data (``../shared/data``, skipped without it):

- **round trip**: the clip's actors equal the boxes read here from the source files (raw JSON /
  ``pandas.read_pickle``) with this file's own quaternion and yaw formulas;
- **boxes enclose their LiDAR points**: around each rigid vehicle the clip's own LiDAR points lie
  inside the box grown by 0.3 m (counted among the points within 1 m of it), and the same count
  with length and width swapped (a 90° yaw error) fails;
- **boxes land on the objects in the images**: box corners projected with plain numpy into the
  real cameras match DGP's 2D box annotations, and land in the PandaSet camera each box was
  labelled in.

nuScenes' bundled sample is the unannotated test split (no ``sample_annotation`` table): its
annotation path is tested on small synthetic tables written here.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from splatnet.clip import Clip
from splatnet.clip.convert import convert
from splatnet.errors import FormatError, ValidationError

DGP_ROOT = SHARED_DATA / "dgp_scene"
SEQ = SHARED_DATA / "pandaset_002"
PS_FRAMES = list(range(30, 40))  # converted PandaSet frames: clip frame f = PandaSet frame 30 + f


def quat_rot(q) -> np.ndarray:
    """Rotation of a unit quaternion (w, x, y, z) via axis-angle and Rodrigues' formula."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q)
    s = np.linalg.norm(q[1:])
    if s < 1e-15:
        return np.eye(3)
    k = q[1:] / s
    angle = 2.0 * math.atan2(s, q[0])
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * Kx + (1 - math.cos(angle)) * Kx @ Kx


def rigid(R, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def corners(size, T) -> np.ndarray:
    """``[8, 3]`` corners of a (length, width, height) box centred at T, axes = T's columns."""
    half = np.asarray(size, dtype=np.float64) / 2
    signs = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], dtype=np.float64)
    return (signs * half) @ T[:3, :3].T + T[:3, 3]


def enclosure(points, size, T, others) -> tuple[int, float]:
    """(points within 1 m of the box, the fraction of them within 0.3 m).

    Points less than 0.3 m above the box's bottom face (the ground it stands on) and points in
    another annotated box (``others`` mask) are left out: they are not this object's.
    """
    local = (points - T[:3, 3]) @ T[:3, :3]
    half = np.asarray(size, dtype=np.float64) / 2
    near = np.all(np.abs(local) <= half + 1.0, axis=1) & (local[:, 2] > -half[2] + 0.3) & ~others
    inside = near & np.all(np.abs(local) <= half + 0.3, axis=1)
    n = int(near.sum())
    return n, (float(inside.sum()) / n if n else float("nan"))


def in_box(points, size, T, margin) -> np.ndarray:
    local = (points - T[:3, 3]) @ T[:3, :3]
    return np.all(np.abs(local) <= np.asarray(size) / 2 + margin, axis=1)


def enclosure_scores(clip, vehicle, frames, swap=False) -> np.ndarray:
    """Enclosure fractions of every vehicle box with >= 30 points near it, over ``frames``."""
    scores = []
    for f in frames:
        pts = clip.lidar(f).double().numpy()
        boxes = [(a.size, a.pose_at_frame(f), a.label) for a in clip.actors if a.present(f)]
        # the points within reach of each box (a bounding circle in x, y), then exact tests on those
        near = [np.flatnonzero(np.sum((pts[:, :2] - T[:2, 3]) ** 2, 1) < (np.linalg.norm(s) / 2 + 1.8) ** 2)
                for s, T, _ in boxes]
        count = np.zeros(len(pts), dtype=np.int64)  # how many boxes (grown by 0.1 m) hold each point
        held = [idx[in_box(pts[idx], s, T, 0.1)] for idx, (s, T, _) in zip(near, boxes)]
        for h in held:
            count[h] += 1
        for idx, h, (size, T, label) in zip(near, held, boxes):
            if not vehicle(label):
                continue
            if swap:
                size = (size[1], size[0], size[2])
            others = count[idx] - np.isin(idx, h) > 0
            n, frac = enclosure(pts[idx], size, T, others)
            if n >= 30:
                scores.append(frac)
    return np.array(scores)


def project(K, cam_to_world, X) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``[N, 2]`` and depths ``[N]`` of world points (OpenCV camera)."""
    pc = (X - cam_to_world[:3, 3]) @ cam_to_world[:3, :3]
    uv = np.stack([K[0, 0] * pc[:, 0] / pc[:, 2] + K[0, 2], K[1, 1] * pc[:, 1] / pc[:, 2] + K[1, 2]], 1)
    return uv, pc[:, 2]


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# ---------------------------------------------------------------------------- DGP

DGP_VEHICLES = {"Car", "Truck", "Bus/RV/Caravan", "Trailer", "Towed Object"}


def dgp_scene(name):
    path = DGP_ROOT / name
    if not path.is_dir():
        pytest.skip(f"shared data not found: {path}")
    return path


@pytest.fixture(scope="module", params=["scene_02", "scene_01"])
def dgp(request, tmp_path_factory):
    """(scene directory, its clip): scene_02 drives past a few cars, scene_01 stands in a car park."""
    root = dgp_scene(request.param)
    return root, Clip.load(convert("dgp", root, tmp_path_factory.mktemp("dgp") / "clip"))


def dgp_raw(root: Path):
    """Per sample: {sensor name: datum}; the calibration's LiDAR extrinsic; class id -> name."""
    scene = json.loads(next(root.glob("scene_*.json")).read_text())
    data = {d["key"]: d for d in scene["data"]}
    samples = [{data[k]["id"]["name"]: next(iter(data[k]["datum"].values())) for k in s["datum_keys"]}
               for s in scene["samples"]]
    calib = json.loads(next((root / "calibration").glob("*.json")).read_text())
    ontology = json.loads((root / "ontology" / f"{scene['ontologies']['1']}.json").read_text())
    return samples, calib, {i["id"]: i["name"] for i in ontology["items"]}


def dgp_pose(p) -> np.ndarray:
    r, t = p["rotation"], p["translation"]
    return rigid(quat_rot([r["qw"], r["qx"], r["qy"], r["qz"]]), [t["x"], t["y"], t["z"]])


def test_dgp_round_trip(dgp):
    root, clip = dgp
    samples, calib, names = dgp_raw(root)
    X_lidar = dgp_pose(calib["extrinsics"][calib["names"].index("LIDAR")])
    # the clip's world: the first sample's ego pose = LiDAR pose @ inverse(LiDAR extrinsic)
    world = np.linalg.inv(dgp_pose(samples[0]["LIDAR"]["pose"]) @ np.linalg.inv(X_lidar))
    expected = {}
    for f, s in enumerate(samples):
        lidar = s["LIDAR"]
        anns = json.loads((root / lidar["annotations"]["1"]).read_text())["annotations"]
        for a in anns:
            b = a["box"]
            e = expected.setdefault(str(a["instance_id"]), {"label": names[a["class_id"]], "frames": [],
                                                            "poses": [], "sizes": set()})
            e["frames"].append(f)
            e["poses"].append(world @ dgp_pose(lidar["pose"]) @ dgp_pose(b["pose"]))
            e["sizes"].add((b["length"], b["width"], b["height"]))
    assert len(clip.actors) == len(expected) > 10
    assert json.loads((clip.path / "clip.json").read_text())["version"] == 1.1
    for a in clip.actors:
        e = expected[a.id]
        assert a.label == e["label"] and a.frames.tolist() == e["frames"]
        assert len(e["sizes"]) == 1 and a.size == pytest.approx(e["sizes"].pop(), abs=1e-12)
        np.testing.assert_allclose(a.box_to_world, np.stack(e["poses"]), atol=1e-9, rtol=0)
        assert a.moving is None  # DGP boxes carry no motion flag


def test_dgp_boxes_enclose_their_lidar_points(dgp):
    root, clip = dgp
    scores = enclosure_scores(clip, DGP_VEHICLES.__contains__, range(clip.num_frames))
    assert len(scores) >= 6
    if root.name == "scene_02":  # a road: every car and truck
        assert scores.min() >= 0.9, scores
    else:  # a car park: bushes and unlabelled objects stand within 1 m of some parked cars
        assert np.median(scores) >= 0.97 and np.mean(scores >= 0.9) >= 0.65, np.sort(scores)
    # a 90 degree yaw error (length and width swapped) fails the same count
    wrong = enclosure_scores(clip, DGP_VEHICLES.__contains__, range(clip.num_frames), swap=True)
    assert np.mean(wrong >= 0.9) < 0.1 and np.median(wrong) < 0.7, np.sort(wrong)


def test_dgp_boxes_match_the_2d_box_annotations_in_the_images(dgp):
    """Each DGP image has 2D boxes (``bounding_box_2d``) with the instance ids of the 3D ones: the
    bounding rectangle of the projected 3D box corners must cover the same pixels."""
    root, clip = dgp
    samples, _, _ = dgp_raw(root)
    by_id = {a.id: a for a in clip.actors}
    scores = []
    for f, s in enumerate(samples):
        for cam, datum in s.items():
            if "0" not in datum.get("annotations", {}):
                continue
            K, c2w = clip.camera(cam).K, clip.cam_to_world(f, cam)
            W, H = clip.camera(cam).width, clip.camera(cam).height
            for a in json.loads((root / datum["annotations"]["0"]).read_text())["annotations"]:
                actor = by_id[str(a["instance_id"])]
                uv, z = project(K, c2w, corners(actor.size, actor.pose_at_frame(f)))
                assert np.all(z > 0.5), (cam, f, actor.id)  # in front of the camera
                rect = [max(uv[:, 0].min(), 0), max(uv[:, 1].min(), 0), min(uv[:, 0].max(), W),
                        min(uv[:, 1].max(), H)]
                b = a["box"]
                scores.append(iou(rect, [b["x"], b["y"], b["x"] + b["w"], b["y"] + b["h"]]))
    scores = np.array(scores)
    assert len(scores) >= 30
    assert scores.min() > 0.75 and np.median(scores) > 0.9, np.sort(scores)[:5]


def test_dgp_box_x_axis_points_where_the_object_drives(dgp):
    _, clip = dgp
    moved = 0
    for a in clip.actors:
        d = a.box_to_world[-1, :3, 3] - a.box_to_world[0, :3, 3]
        if np.linalg.norm(d) > 1.0:  # ~3 m in 0.2 s: a moving car
            moved += 1
            assert a.box_to_world[0, :3, 0] @ d / np.linalg.norm(d) > 0.98, a.id
    assert moved >= 4


def copy_dgp(root: Path, dst: Path) -> Path:
    """The scene's JSON files copied (to edit), its images and point clouds linked."""
    dst.mkdir()
    for p in root.iterdir():
        if p.name in ("rgb", "point_cloud"):
            (dst / p.name).symlink_to(p)
        elif p.is_dir():
            shutil.copytree(p, dst / p.name)
        else:
            shutil.copy(p, dst / p.name)
    return dst


def test_dgp_bad_annotations_are_one_line_errors_and_no_actors_skips_them(tmp_path, capsys):
    root = copy_dgp(dgp_scene("scene_02"), tmp_path / "scene")
    ann = next((root / "bounding_box_3d" / "LIDAR").glob("*.json"))
    good = ann.read_text()
    data = json.loads(good)
    data["annotations"][0]["class_id"] = 77
    ann.write_text(json.dumps(data))
    with pytest.raises(FormatError, match=rf"{ann.name}: annotations\[0\]: class_id 77 is not in the"):
        convert("dgp", root, tmp_path / "c1")
    data["annotations"][0]["class_id"] = 2
    data["annotations"][0]["box"]["width"] = -1.0
    ann.write_text(json.dumps(data))
    with pytest.raises(ValidationError, match=rf"{ann.name}: annotations\[0\].box: box size must be"):
        convert("dgp", root, tmp_path / "c1")
    data["annotations"][0]["box"]["width"] = 2.0
    data["annotations"][1]["instance_id"] = data["annotations"][0]["instance_id"]
    ann.write_text(json.dumps(data))
    with pytest.raises(ValidationError, match=r"annotations\[1\]: instance_id \d+ appears twice"):
        convert("dgp", root, tmp_path / "c1")
    assert not (tmp_path / "c1").exists()
    # --no-actors leaves the boxes out (and does not read them): a version 1 clip
    from splatnet.cli import main

    assert main(["convert", "dgp", str(root), str(tmp_path / "c2"), "--no-actors"]) == 0
    assert "actors" not in capsys.readouterr().out
    assert json.loads((tmp_path / "c2" / "clip.json").read_text())["version"] == 1
    assert Clip.load(tmp_path / "c2").actors == []
    ann.write_text(good)
    assert main(["convert", "dgp", str(root), str(tmp_path / "c3")]) == 0
    assert "6 cameras x 3 frames, with LiDAR, 13 actors" in capsys.readouterr().out
    # a scene whose ontology file is missing names it
    for p in (root / "ontology").iterdir():
        p.unlink()
    with pytest.raises(FileNotFoundError, match=r"ontology/.*\.json: file not found"):
        convert("dgp", root, tmp_path / "c4")


def test_cli_no_actors_is_refused_where_there_are_none(tmp_path, capsys):
    from splatnet.cli import main

    assert main(["convert", "colmap", str(tmp_path), str(tmp_path / "c"), "--no-actors"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-actors: the colmap converter does not take it" in err[0], err


# ---------------------------------------------------------------------------- PandaSet

PS_VEHICLES = {"Car", "Pickup Truck", "Medium-sized Truck", "Semi-truck", "Bus",
               "Other Vehicle - Construction Vehicle", "Other Vehicle - Uncommon", "Other Vehicle - Pedicab"}
#: PandaSet's ``camera_used`` index -> camera, read off the data (clockwise from the front left).
PS_CAMERA_USED = ["front_left_camera", "front_camera", "front_right_camera", "right_camera", "back_camera",
                  "left_camera"]


@pytest.fixture(scope="module")
def ps(tmp_path_factory):
    if not SEQ.is_dir():
        pytest.skip(f"shared data not found: {SEQ}")
    pytest.importorskip("pandas")
    return Clip.load(convert("pandaset", SEQ, tmp_path_factory.mktemp("ps") / "clip",
                             frames=slice(PS_FRAMES[0], PS_FRAMES[-1] + 1), size=(54, 96)))


def ps_cuboids(i: int):
    """PandaSet frame ``i``'s cuboids, read with pandas (the shared data is a trusted download),
    without the second LiDAR's duplicates (``cuboids.sensor_id`` 1)."""
    import pandas as pd

    df = pd.read_pickle(SEQ / "annotations" / "cuboids" / f"{i:02d}.pkl.gz")
    return df[df["cuboids.sensor_id"] != 1]


def ps_world():
    """The clip's world from PandaSet's: inverse of the first converted LiDAR pose turned to the
    ego axes (x forward = LiDAR +y, y left = LiDAR -x, z up)."""
    p = json.loads((SEQ / "lidar" / "poses.json").read_text())[PS_FRAMES[0]]
    lidar = rigid(quat_rot([p["heading"][k] for k in "wxyz"]), [p["position"][k] for k in "xyz"])
    ego_axes = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    return np.linalg.inv(lidar @ rigid(ego_axes, [0, 0, 0]))


def test_pandaset_round_trip_reindexed_to_the_clip_frames(ps):
    world = ps_world()
    expected = {}
    for f, i in enumerate(PS_FRAMES):
        for _, r in ps_cuboids(i).iterrows():
            yaw = r["yaw"]
            # dimensions.x is the width, .y the length; yaw turns the box's +y (its front)
            forward, left = [-math.sin(yaw), math.cos(yaw), 0.0], [-math.cos(yaw), -math.sin(yaw), 0.0]
            T = rigid(np.array([forward, left, [0.0, 0.0, 1.0]]).T,
                      [r["position.x"], r["position.y"], r["position.z"]])
            motion = r["attributes.object_motion"]
            e = expected.setdefault(r["uuid"], {"label": r["label"], "frames": [], "poses": [], "moving": [],
                                                "size": (r["dimensions.y"], r["dimensions.x"],
                                                         r["dimensions.z"])})
            e["frames"].append(f)
            e["poses"].append(world @ T)
            e["moving"].append(motion == "Moving" if isinstance(motion, str) else not r["stationary"])
    assert len(ps.actors) == len(expected) > 50
    for a in ps.actors:
        e = expected[a.id]
        assert (a.label, a.frames.tolist(), a.moving.tolist()) == (e["label"], e["frames"], e["moving"])
        assert a.size == pytest.approx(e["size"], abs=1e-12)
        np.testing.assert_allclose(a.box_to_world, np.stack(e["poses"]), atol=1e-9, rtol=0)
    labels = {a.label for a in ps.actors}
    assert {"Car", "Pedestrian"} <= labels
    moving = [a for a in ps.actors if a.moving.all()]
    assert 10 < len(moving) < len(ps.actors) - 10  # about half of them move (data README)


def test_pandaset_boxes_enclose_their_lidar_points(ps):
    frames = [0, 5, 9]
    scores = enclosure_scores(ps, PS_VEHICLES.__contains__, frames)
    assert len(scores) >= 90
    # parked cars line the street: walls, trees and unlabelled things stand within 1 m of some
    assert np.median(scores) >= 0.97 and np.mean(scores >= 0.9) >= 0.65, np.sort(scores)
    wrong = enclosure_scores(ps, PS_VEHICLES.__contains__, frames, swap=True)
    assert np.mean(wrong >= 0.9) < 0.15 and np.median(wrong) < 0.7, np.sort(wrong)


def test_pandaset_boxes_land_in_the_camera_they_were_labelled_in(ps):
    """``camera_used`` names the camera a box was labelled in (per frame): the box must be in
    front of that camera and its projected corners' bounding rectangle overlap its image (a few
    are labelled in a camera they have just left: close cars at the image edge)."""
    checked, in_front, overlaps, mostly_inside = 0, 0, 0, 0
    for f, i in enumerate(PS_FRAMES):
        df = ps_cuboids(i)
        used = dict(zip(df["uuid"], df["camera_used"]))
        for a in ps.actors:
            if not a.present(f) or used.get(a.id, -1) < 0:
                continue
            cam = ps.camera(PS_CAMERA_USED[used[a.id]])
            uv, z = project(cam.K, ps.cam_to_world(f, cam.name), corners(a.size, a.pose_at_frame(f)))
            checked += 1
            if np.all(z > 0.5):
                in_front += 1
                x0, y0, x1, y1 = uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()
                visible = (max(0.0, min(x1, cam.width) - max(x0, 0))
                           * max(0.0, min(y1, cam.height) - max(y0, 0)))
                overlaps += visible > 0
                mostly_inside += visible > 0.5 * (x1 - x0) * (y1 - y0)
    assert checked >= 80 and in_front == checked
    assert overlaps >= 0.95 * checked and mostly_inside >= 0.75 * checked, (overlaps, mostly_inside, checked)


def test_pandaset_box_x_axis_points_where_the_object_drives(ps):
    moved = 0
    for a in ps.actors:
        d = a.box_to_world[-1, :3, 3] - a.box_to_world[0, :3, 3]
        if np.linalg.norm(d) > 2.0 and a.label in PS_VEHICLES:
            moved += 1
            assert a.box_to_world[len(a.frames) // 2, :3, 0] @ d / np.linalg.norm(d) > 0.95, a.id
    assert moved >= 5


def test_pandaset_missing_cuboid_table_warns_and_no_actors_skips(tmp_path):
    if not SEQ.is_dir():
        pytest.skip(f"shared data not found: {SEQ}")
    pytest.importorskip("pandas")
    src = tmp_path / "seq"
    src.mkdir()
    for name in ("camera", "lidar", "meta"):
        (src / name).symlink_to(SEQ / name)
    (src / "annotations" / "cuboids").mkdir(parents=True)
    for i in (0, 2):
        shutil.copy(SEQ / "annotations" / "cuboids" / f"{i:02d}.pkl.gz", src / "annotations" / "cuboids")
    with pytest.warns(UserWarning, match=r"no cuboid table for frame\(s\) \[1\]"):
        clip = Clip.load(convert("pandaset", src, tmp_path / "c1", frames=slice(0, 3), size=(54, 96)))
    assert clip.metadata["source"]["frames_without_cuboids"] == [1]
    assert {tuple(a.frames.tolist()) for a in clip.actors} >= {(0, 2)}
    assert all(1 not in a.frames for a in clip.actors)
    clip = Clip.load(convert("pandaset", src, tmp_path / "c2", frames=slice(0, 3), size=(54, 96),
                             actors=False))
    assert clip.actors == []


# ---------------------------------------------------------------------------- nuScenes


def write_nuscenes(root: Path, annotations: bool = True) -> dict:
    """A two-keyframe nuScenes scene with one camera, and (optionally) annotation tables: a car
    yawed 30 degrees driving 1 m between the samples, a pedestrian in the first sample only."""
    t = root / "v1.0-mini"
    t.mkdir(parents=True)
    (root / "samples" / "CAM_FRONT").mkdir(parents=True)

    def table(name, rows):
        (t / f"{name}.json").write_text(json.dumps(rows))

    yaw_q = [math.cos(math.pi / 12), 0.0, 0.0, math.sin(math.pi / 12)]  # 30 degrees about +z
    ego = [{"token": f"e{i}", "timestamp": 1_000_000 + 500_000 * i, "translation": [100.0 + 2 * i, 50.0, 0.0],
            "rotation": [1.0, 0.0, 0.0, 0.0]} for i in range(2)]
    table("scene", [{"token": "sc", "name": "scene-x", "description": ""}])
    table("sensor", [{"token": "s", "channel": "CAM_FRONT", "modality": "camera"}])
    table("calibrated_sensor", [{"token": "c", "sensor_token": "s", "translation": [1.5, 0.0, 1.5],
                                 "rotation": [0.5, -0.5, 0.5, -0.5],
                                 "camera_intrinsic": [[30.0, 0, 16], [0, 30.0, 12], [0, 0, 1]]}])
    table("ego_pose", ego)
    table("sample", [{"token": f"s{i}", "scene_token": "sc", "timestamp": e["timestamp"]}
                     for i, e in enumerate(ego)])
    sd = []
    for i, e in enumerate(ego):
        name = f"samples/CAM_FRONT/{i}.jpg"
        Image.fromarray(np.full((24, 32, 3), 90 + 40 * i, np.uint8)).save(root / name)
        sd.append({"token": f"d{i}", "sample_token": f"s{i}", "ego_pose_token": e["token"],
                   "calibrated_sensor_token": "c", "timestamp": e["timestamp"], "filename": name,
                   "width": 32, "height": 24, "is_key_frame": True})
    table("sample_data", sd)
    boxes = {
        "car": [("s0", [110.0, 52.0, 0.8], ["a_moving"]), ("s1", [111.0, 52.0, 0.8], ["a_moving"])],
        "ped": [("s0", [105.0, 45.0, 0.9], [])],
    }
    if annotations:
        table("category", [{"token": "k_car", "name": "vehicle.car"},
                           {"token": "k_ped", "name": "human.pedestrian.adult"}])
        table("attribute", [{"token": "a_moving", "name": "vehicle.moving"},
                            {"token": "a_parked", "name": "vehicle.parked"}])
        table("instance", [{"token": "i_car", "category_token": "k_car"},
                           {"token": "i_ped", "category_token": "k_ped"}])
        rows = []
        for inst, size, q, name in (("i_car", [1.9, 4.5, 1.6], yaw_q, "car"),
                                    ("i_ped", [0.6, 0.7, 1.8], [1.0, 0, 0, 0], "ped")):
            for j, (sample, xyz, attrs) in enumerate(boxes[name]):
                rows.append({"token": f"{inst}_{j}", "sample_token": sample, "instance_token": inst,
                             "translation": xyz, "size": size, "rotation": q, "attribute_tokens": attrs})
        table("sample_annotation", rows)
    return {"ego": ego, "boxes": boxes}


def test_nuscenes_sample_annotations_become_actors(tmp_path):
    spec = write_nuscenes(tmp_path / "ns")
    clip = Clip.load(convert("nuscenes", tmp_path / "ns", tmp_path / "clip"))
    assert [a.id for a in clip.actors] == ["i_car", "i_ped"]
    car, ped = clip.actors
    # the clip's world is the first ego pose (no LiDAR: the camera's sample_data's)
    world_x, world_y = spec["ego"][0]["translation"][:2]
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    for f, x in enumerate((110.0, 111.0)):
        expected = np.array([[c, -s, 0, x - world_x], [s, c, 0, 52.0 - world_y], [0, 0, 1, 0.8],
                             [0, 0, 0, 1]])
        np.testing.assert_allclose(car.box_to_world[f], expected, atol=1e-12)
    assert car.size == (4.5, 1.9, 1.6) and car.label == "vehicle.car"  # size [w, l, h] -> (l, w, h)
    assert car.frames.tolist() == [0, 1] and car.moving.tolist() == [True, True]
    assert ped.frames.tolist() == [0] and ped.moving is None and ped.size == (0.7, 0.6, 1.8)
    np.testing.assert_allclose(ped.box_to_world[0, :3, 3], [5.0, -5.0, 0.9], atol=1e-12)
    # between the samples the car is interpolated: half-way, half a metre on
    mid = car.pose_at(float(clip.timestamps[1]) / 2, clip.timestamps.numpy())
    assert mid[0, 3] == pytest.approx(10.5, abs=1e-12)
    assert Clip.load(convert("nuscenes", tmp_path / "ns", tmp_path / "c2", actors=False)).actors == []


def test_nuscenes_without_annotation_tables_has_no_actors(tmp_path):
    write_nuscenes(tmp_path / "ns", annotations=False)
    path = convert("nuscenes", tmp_path / "ns", tmp_path / "clip")
    assert Clip.load(path).actors == [] and json.loads((path / "clip.json").read_text())["version"] == 1
    nusc = SHARED_DATA / "nuscenes_sample"  # the bundled sample: the unannotated test split
    if nusc.is_dir():
        assert not (nusc / "v1.0-test" / "sample_annotation.json").exists()
        assert Clip.load(convert("nuscenes", nusc, tmp_path / "real")).actors == []


def test_nuscenes_bad_annotations_name_the_table(tmp_path):
    write_nuscenes(tmp_path / "ns")
    t = tmp_path / "ns" / "v1.0-mini"
    inst = json.loads((t / "instance.json").read_text())
    inst[1]["category_token"] = "nope"
    (t / "instance.json").write_text(json.dumps(inst))
    with pytest.raises(FormatError, match=r"sample_annotation\.json: i_ped_0: category nope is not in"):
        convert("nuscenes", tmp_path / "ns", tmp_path / "c")
    inst[1]["category_token"] = "k_ped"
    (t / "instance.json").write_text(json.dumps(inst))
    rows = json.loads((t / "sample_annotation.json").read_text())
    rows[0]["size"] = [1.9, 4.5]
    (t / "sample_annotation.json").write_text(json.dumps(rows))
    with pytest.raises(FormatError, match=r"i_car_0: expected instance_token, translation, size"):
        convert("nuscenes", tmp_path / "ns", tmp_path / "c")
    rows[0]["size"] = [1.9, 4.5, 1.6]
    rows[1]["sample_token"] = "s0"  # the car twice in the first sample
    (t / "sample_annotation.json").write_text(json.dumps(rows))
    with pytest.raises(ValidationError, match=r"i_car_1: object 'i_car' has a second box in clip frame 0"):
        convert("nuscenes", tmp_path / "ns", tmp_path / "c")
    (t / "instance.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"instance\.json: nuScenes table not found"):
        convert("nuscenes", tmp_path / "ns", tmp_path / "c")
    assert not (tmp_path / "c").exists()
