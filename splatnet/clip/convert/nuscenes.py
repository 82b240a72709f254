"""nuScenes (tables + ``samples/``) → splatnet clip, reading the JSON tables directly.

Input: the dataset root holding ``v1.0-*/`` (the tables) and ``samples/``. ``scene`` picks a
scene by name when the tables hold several; ``version`` picks the table directory when there are
several (``v1.0-mini``, …).

Conventions (nuScenes devkit): quaternions are Hamilton ``[w, x, y, z]``; ``calibrated_sensor``
holds sensor-to-ego (rotation, translation) and ``camera_intrinsic``; ``ego_pose`` is ego-to-world
at a sample_data's timestamp (microseconds); camera frames are OpenCV; ``.pcd.bin`` LiDAR files
are float32 ``[M, 5]`` = x, y, z, intensity, ring index in the sensor frame.

Timing: nuScenes cameras fire one after the other as the LiDAR sweeps past them, so the six
images of one sample are up to ~50 ms apart, and the car moves ~0.5 m in that time at city
speeds. Each sample_data has its own ego pose, so every image keeps *its own* capture time and
ego pose (``camera_timestamps`` / ``camera_ego_to_world``): the camera's pose is
``ego_pose(image) @ calibrated_sensor(camera)``. Frame = one keyframe sample; its timestamp is
the sample's (the LiDAR sweep's) and its ego pose is the LIDAR_TOP sample_data's (the first
camera's when there is no LiDAR). Points go in the ego frame at the sweep's own ego pose.
Only keyframes (``is_key_frame``) are converted; images are copied byte for byte (nuScenes
images are undistorted pinhole).

Actors (clip format 1.1), when the tables have ``sample_annotation.json`` (the test split has
none): one actor per ``instance`` with a box in the scene's keyframes, label = its category's
name, box-to-world from the annotation's global ``translation`` (centre) and ``rotation``, size =
``size`` ``[w, l, h]`` reordered to (length, width, height) (the devkit's ``Box``: x along the
length); ``moving`` from the ``*.moving`` / parked / stopped / standing / sitting attributes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from splatnet.clip.convert._geom import pose_from_quat, transform_points
from splatnet.clip.convert._masks import camera_masks
from splatnet.clip.convert._tracks import Box, actors_from_boxes, check_size
from splatnet.clip.writer import CameraSpec, FrameSpec, LidarSpec, write_clip
from splatnet.errors import FormatError, ValidationError

LIDAR_CHANNEL = "LIDAR_TOP"


def _table(tables: Path, name: str) -> list[dict[str, Any]]:
    path = tables / f"{name}.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: nuScenes table not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(rows, list):
        raise FormatError(f"{path}: expected a JSON list of records")
    return rows


def _find_tables(root: Path, version: str | None) -> Path:
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: nuScenes root not found")
    if version is not None:
        tables = root / version
        if not (tables / "sample.json").is_file():
            raise FileNotFoundError(f"{tables}: no nuScenes tables (sample.json) here")
        return tables
    cands = sorted(p for p in root.iterdir() if p.is_dir() and (p / "sample.json").is_file())
    if not cands:
        raise FormatError(f"{root}: no nuScenes table directory (v1.0-*/sample.json) found")
    if len(cands) > 1:
        raise ValidationError(f"{root}: several table versions {[c.name for c in cands]}; pass version=")
    return cands[0]


def read_nuscenes(src: str | Path, *, scene: str | None = None, version: str | None = None) -> dict[str, Any]:
    """Parse one nuScenes scene into numpy structures (the converter's input; used by tests)."""
    root = Path(src)
    tables = _find_tables(root, version)
    scenes = _table(tables, "scene")
    if scene is not None:
        chosen = [s for s in scenes if s["name"] == scene]
        if not chosen:
            raise ValidationError(f"{tables}: no scene {scene!r} (scenes: {[s['name'] for s in scenes]})")
    elif len(scenes) == 1:
        chosen = scenes
    else:
        raise ValidationError(f"{tables}: several scenes {[s['name'] for s in scenes]}; pass scene=")
    scene_rec = chosen[0]
    sensors = {s["token"]: s for s in _table(tables, "sensor")}
    calibs = {c["token"]: c for c in _table(tables, "calibrated_sensor")}
    poses = {p["token"]: p for p in _table(tables, "ego_pose")}
    samples = sorted(
        (s for s in _table(tables, "sample") if s["scene_token"] == scene_rec["token"]),
        key=lambda s: s["timestamp"],
    )
    if not samples:
        raise FormatError(f"{tables}: scene {scene_rec['name']!r} has no samples")
    by_sample: dict[str, list[dict[str, Any]]] = {s["token"]: [] for s in samples}
    for sd in _table(tables, "sample_data"):
        if sd.get("is_key_frame", True) and sd["sample_token"] in by_sample:
            by_sample[sd["sample_token"]].append(sd)

    def ego_pose(sd: dict[str, Any]) -> np.ndarray:
        p = poses.get(sd["ego_pose_token"])
        if p is None:
            raise FormatError(f"{tables}: sample_data {sd['token']} refers to a missing ego_pose")
        return pose_from_quat(p["rotation"], p["translation"], f"{tables}/ego_pose.json: {p['token']}")

    cameras: dict[str, dict[str, Any]] = {}
    frames = []
    for s in samples:
        fr: dict[str, Any] = {"timestamp": s["timestamp"] * 1e-6, "images": {}, "lidar": None,
                              "sample_token": s["token"]}
        for sd in sorted(by_sample[s["token"]], key=lambda d: d["filename"]):
            cal = calibs.get(sd["calibrated_sensor_token"])
            if cal is None:
                raise FormatError(
                    f"{tables}: sample_data {sd['token']} refers to a missing calibrated_sensor"
                )
            sensor = sensors[cal["sensor_token"]]
            channel, modality = sensor["channel"], sensor["modality"]
            where = f"{tables}/calibrated_sensor.json: {cal['token']} ({channel})"
            s2e = pose_from_quat(cal["rotation"], cal["translation"], where)
            entry = {
                "timestamp": sd["timestamp"] * 1e-6,
                "ego_to_world": ego_pose(sd),
                "path": root / sd["filename"],
                "sensor_to_ego": s2e,
            }
            if modality == "camera":
                K = np.asarray(cal["camera_intrinsic"], dtype=np.float64)
                cam = {"K": K, "cam_to_ego": s2e, "width": int(sd["width"]), "height": int(sd["height"])}
                prev = cameras.setdefault(channel, cam)
                if not (np.allclose(prev["K"], K) and np.allclose(prev["cam_to_ego"], s2e)):
                    raise ValidationError(f"{where}: calibration of {channel} changes within the scene")
                fr["images"][channel] = entry
            elif modality == "lidar" and channel == LIDAR_CHANNEL:
                fr["lidar"] = entry
        frames.append(fr)
    names = sorted(cameras)
    for si, fr in enumerate(frames):
        if sorted(fr["images"]) != names:
            raise ValidationError(
                f"{tables}: sample {si} has cameras {sorted(fr['images'])}, the scene has {names}"
            )
    return {"tables": tables, "scene": scene_rec, "cameras": cameras, "frames": frames}


#: attribute names that say whether an object moves (others, e.g. ``cycle.with_rider``, do not).
_MOVING = {"vehicle.moving": True, "pedestrian.moving": True, "vehicle.stopped": False,
           "vehicle.parked": False, "pedestrian.standing": False, "pedestrian.sitting_lying_down": False}


def read_nuscenes_boxes(ns: dict[str, Any]) -> list[Box] | None:
    """The scene's annotated boxes (``sample_annotation``, with ``instance`` and ``category``), one
    :class:`Box` per object and keyframe; None when the tables have no ``sample_annotation.json``
    (the test split has none).

    Boxes are in the global frame (the frame of the ego poses): ``translation`` is the centre,
    ``rotation`` box-to-global ``[w, x, y, z]``, ``size`` = ``[width, length, height]`` with the
    box x axis along the length (the devkit's ``Box``). Track = ``instance_token``, label = the
    instance's category name, moving = from the ``*.moving`` / ``vehicle.parked`` /
    ``vehicle.stopped`` / ``pedestrian.standing`` / ``pedestrian.sitting_lying_down`` attributes
    (None when an annotation has none of them).
    """
    tables = ns["tables"]
    if not (tables / "sample_annotation.json").is_file():
        return None
    frame_of = {fr["sample_token"]: fi for fi, fr in enumerate(ns["frames"])}
    rows = [r for r in _table(tables, "sample_annotation") if r.get("sample_token") in frame_of]
    if not rows:
        return []
    instances = {i["token"]: i for i in _table(tables, "instance")}
    categories = {c["token"]: c["name"] for c in _table(tables, "category")}
    attributes: dict[str, str] | None = None
    boxes = []
    for r in rows:
        where = f"{tables}/sample_annotation.json: {r.get('token')}"
        try:
            inst_token, (w, length, h) = r["instance_token"], r["size"]
            rotation, translation = r["rotation"], r["translation"]
            attrs = [str(t) for t in r.get("attribute_tokens") or []]
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"{where}: expected instance_token, translation, size [w, l, h] and "
                              "rotation [w, x, y, z]") from None
        inst = instances.get(inst_token)
        if inst is None:
            raise FormatError(f"{where}: instance {inst_token} is not in instance.json")
        label = categories.get(inst.get("category_token"))
        if label is None:
            raise FormatError(f"{where}: category {inst.get('category_token')} is not in category.json")
        moving = None
        if attrs:
            if attributes is None:
                attributes = {a["token"]: a["name"] for a in _table(tables, "attribute")}
            unknown = [t for t in attrs if t not in attributes]
            if unknown:
                raise FormatError(f"{where}: attribute {unknown[0]} is not in attribute.json")
            flags = {_MOVING[attributes[t]] for t in attrs if attributes[t] in _MOVING}
            moving = flags.pop() if len(flags) == 1 else None
        T = pose_from_quat(rotation, translation, where)
        boxes.append(Box(inst_token, label, frame_of[r["sample_token"]], T,
                         check_size((length, w, h), where), moving, where))
    return boxes


def read_pcd_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """nuScenes LiDAR ``.pcd.bin``: float32 ``[M, 5]`` → xyz ``[M, 3]``, intensity ``[M]``."""
    try:
        raw = np.fromfile(path, dtype="<f4")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: LiDAR file not found") from None
    if raw.size % 5:
        raise FormatError(f"{path}: size is not a multiple of 5 float32 (x, y, z, intensity, ring)")
    arr = raw.reshape(-1, 5)
    keep = np.all(np.isfinite(arr[:, :3]), axis=1)
    return arr[keep, :3].astype(np.float64), arr[keep, 3].astype(np.float32)


def convert_nuscenes(
    src: str | Path,
    dst: str | Path,
    *,
    overwrite: bool = False,
    scene: str | None = None,
    version: str | None = None,
    actors: bool = True,
    masks: str | Path | None = None,
    **_: Any,
) -> Path:
    """Convert one nuScenes scene (keyframes) under the dataset root ``src`` into a clip.

    ``actors``: convert the ``sample_annotation`` boxes into actor tracks when the tables have
    them (default); False skips them.
    """
    ns = read_nuscenes(src, scene=scene, version=version)
    names = sorted(ns["cameras"])
    cams = [
        CameraSpec(
            n,
            ns["cameras"][n]["K"],
            ns["cameras"][n]["width"],
            ns["cameras"][n]["height"],
            ns["cameras"][n]["cam_to_ego"],
        )
        for n in names
    ]
    frames, images, lidar = [], {}, {}
    for fi, fr in enumerate(ns["frames"]):
        lid = fr["lidar"]
        ego = lid["ego_to_world"] if lid is not None else fr["images"][names[0]]["ego_to_world"]
        frames.append(
            FrameSpec(
                timestamp=fr["timestamp"],
                ego_to_world=ego,
                camera_timestamps={n: fr["images"][n]["timestamp"] for n in names},
                camera_ego_to_world={n: fr["images"][n]["ego_to_world"] for n in names},
            )
        )
        for n in names:
            images[(fi, n)] = fr["images"][n]["path"]
        if lid is not None:
            pts, inten = read_pcd_bin(lid["path"])
            lidar[fi] = LidarSpec(
                transform_points(lid["sensor_to_ego"], pts).astype(np.float32),
                frame="ego",
                intensity=inten,
                timestamp=lid["timestamp"],
                ego_to_world=lid["ego_to_world"],
            )
    boxes = read_nuscenes_boxes(ns) if actors else None
    meta = {
        "source": {
            "kind": "nuscenes",
            "tables": str(ns["tables"]),
            "scene": ns["scene"]["name"],
            "description": ns["scene"].get("description", ""),
        }
    }
    return write_clip(dst, cams, frames, images, lidar=lidar, metadata=meta, overwrite=overwrite,
                      actors=actors_from_boxes(boxes or []) or None,
                      masks=camera_masks(masks, cams) or None)
