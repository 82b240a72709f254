"""DGP / DDAD scenes (TRI's Dataset Governance Policy JSON format) → splatnet clip.

Input: one scene directory (holding ``scene_<hash>.json``, ``calibration/``, ``rgb/`` and
optionally ``point_cloud/``) or the scene JSON itself.

Conventions read from the data (and checked by projecting LiDAR into the images, see the tests):

- quaternions are Hamilton ``(qw, qx, qy, qz)``; every datum's ``pose`` is sensor-to-world;
  calibration ``extrinsics`` are sensor-to-vehicle (the LiDAR's is the vehicle frame in DDAD);
- camera frames are OpenCV (+x right, +y down, +z forward); intrinsics ``fx fy cx cy`` are
  pinhole in pixels (non-zero ``skew`` is rejected);
- LiDAR ``.npz`` files hold ``data`` ``[M, 4+]`` = X, Y, Z (sensor frame), intensity, …

Mapping: one clip frame per DGP sample (in sample order), timestamp = the sample's timestamp and
ego pose = the LiDAR datum's pose composed with the inverse LiDAR extrinsic (the first camera's
when a sample has no LiDAR). Cameras fire at slightly different times than the LiDAR, so each
image keeps its own capture time and its own ego pose (``camera_timestamps`` /
``camera_ego_to_world``, ego pose = image datum pose @ inverse(camera extrinsic)): every camera
is placed exactly where the data says it was when it took the picture. Points are stored in the
ego frame at the sweep's own ego pose. Images are copied byte for byte (DGP images are
undistorted pinhole). Timestamps are the datums' ISO-8601 times as seconds since the Unix epoch.

Actors (clip format 1.1) come from the datums' ``bounding_box_3d`` annotations (DGP's
``BoundingBox3DAnnotations``): one actor per ``instance_id`` (its id, as a decimal string), label
= the ``class_id``'s name in the scene's 3D-box ontology (``ontologies["1"]`` →
``ontology/<hash>.json``), size = (``length``, ``width``, ``height``) and box-to-world = the
annotated datum's sensor-to-world pose @ the box ``pose`` (box-to-sensor). The box axes are x
along the length, y the width, z the height (DGP's ``BoundingBox3D``; checked against the LiDAR
points, the 2D box annotations and the tracks' motion, see the tests). Each sample reads its point
cloud's annotations, then its images' (in DDAD every datum's box of an object is the same world
box), so boxes are posed at the sweep's time, the frame's timestamp. DGP boxes have no motion
flag (``moving`` is absent).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from splatnet.clip._files import read_json
from splatnet.clip.convert._geom import inv_rigid, pose_from_quat, transform_points
from splatnet.clip.convert._masks import camera_masks
from splatnet.clip.convert._tracks import Box, actors_from_boxes, check_size
from splatnet.clip.writer import CameraSpec, FrameSpec, LidarSpec, write_clip
from splatnet.errors import FormatError, ValidationError

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: DGP's AnnotationType id of 3D boxes (dgp/proto/annotations.proto: BOUNDING_BOX_3D = 1), the
#: key of a datum's ``annotations`` and of the scene's ``ontologies``.
BOUNDING_BOX_3D = "1"


def _timestamp(iso: str, where: str) -> float:
    try:
        dt = datetime.strptime(iso.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    except (TypeError, ValueError):
        try:
            dt = datetime.strptime(str(iso).replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            raise FormatError(f"{where}: cannot parse timestamp {iso!r}") from None
    delta = dt - _EPOCH
    return delta.days * 86400.0 + delta.seconds + delta.microseconds * 1e-6


def _pose(p: Any, where: str) -> np.ndarray:
    try:
        r, t = p["rotation"], p["translation"]
        return pose_from_quat(
            [r.get("qw", 0.0), r.get("qx", 0.0), r.get("qy", 0.0), r.get("qz", 0.0)],
            [t.get("x", 0.0), t.get("y", 0.0), t.get("z", 0.0)],
            where,
        )
    except (KeyError, TypeError, AttributeError):
        raise FormatError(f"{where}: expected {{rotation: {{qw..qz}}, translation: {{x, y, z}}}}") from None


def find_scene_json(src: Path) -> Path:
    if src.is_file():
        return src
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: DGP scene not found")
    cands = sorted(p for p in src.glob("scene_*.json") if not p.name.startswith("scene_dataset"))
    if len(cands) == 1:
        return cands[0]
    if not cands:
        sub = sorted(p.name for p in src.iterdir() if p.is_dir() and any(p.glob("scene_*.json")))
        if sub:
            raise FormatError(
                f"{src}: this is a DGP dataset, not a scene; pass one scene directory, e.g. "
                f"{src / sub[0]} (scenes: {sub})"
            )
        raise FormatError(f"{src}: no DGP scene_*.json here")
    raise FormatError(f"{src}: several scene JSONs {[c.name for c in cands]}; pass one of them")


def read_dgp_scene(src: str | Path) -> dict[str, Any]:
    """Parse a DGP scene into plain numpy structures (the converter's input; used by tests)."""
    scene_json = find_scene_json(Path(src))
    root = scene_json.parent
    scene = read_json(scene_json)
    try:
        data = {d["key"]: d for d in scene["data"]}
        samples = scene["samples"]
    except (KeyError, TypeError):
        raise FormatError(f"{scene_json}: expected 'data' and 'samples' lists") from None
    if not samples:
        raise FormatError(f"{scene_json}: scene has no samples")
    calib_keys = {s.get("calibration_key") for s in samples}
    if len(calib_keys) != 1:
        raise ValidationError(
            f"{scene_json}: samples use several calibrations {sorted(calib_keys)}; unsupported"
        )
    calib_path = root / "calibration" / f"{calib_keys.pop()}.json"
    calib = read_json(calib_path)
    try:
        extrinsics = {
            n: _pose(e, f"{calib_path}: extrinsics[{n!r}]")
            for n, e in zip(calib["names"], calib["extrinsics"])
        }
        intrinsics = dict(zip(calib["names"], calib["intrinsics"]))
    except (KeyError, TypeError):
        raise FormatError(f"{calib_path}: expected 'names', 'intrinsics' and 'extrinsics' lists") from None

    frames: list[dict[str, Any]] = []
    for si, s in enumerate(samples):
        fr: dict[str, Any] = {"images": {}, "lidar": None}
        fr["timestamp"] = _timestamp(s["id"]["timestamp"], f"{scene_json}: samples[{si}].id.timestamp")
        fr["iso"] = s["id"]["timestamp"]
        for key in s["datum_keys"]:
            if key not in data:
                raise FormatError(f"{scene_json}: samples[{si}] refers to unknown datum {key}")
            d = data[key]
            name = d["id"]["name"]
            w = f"{scene_json}: datum {name} of sample {si}"
            kind, datum = next(iter(d["datum"].items()))
            if name not in extrinsics:
                raise FormatError(f"{w}: sensor {name!r} missing from {calib_path}")
            anns = datum.get("annotations")
            boxes = anns.get(BOUNDING_BOX_3D) if isinstance(anns, dict) else None
            entry = {
                "timestamp": _timestamp(d["id"]["timestamp"], f"{w}.id.timestamp"),
                "sensor_to_world": _pose(datum.get("pose"), f"{w}.pose"),
                "path": root / datum["filename"],
                "boxes_3d": None if boxes is None else root / boxes,
                "name": name,
            }
            if kind == "image":
                entry["width"], entry["height"] = int(datum["width"]), int(datum["height"])
                fr["images"][name] = entry
            elif kind == "point_cloud":
                if fr["lidar"] is not None:
                    raise ValidationError(f"{w}: several point clouds in one sample; unsupported")
                fr["lidar"] = entry
        frames.append(fr)

    cam_names = list(frames[0]["images"])
    for si, fr in enumerate(frames):
        if list(fr["images"]) != cam_names:
            raise ValidationError(
                f"{scene_json}: sample {si} has cameras {list(fr['images'])}, sample 0 has {cam_names}"
            )
    cameras = {}
    for n in cam_names:
        i = intrinsics[n]
        if abs(float(i.get("skew", 0.0))) > 1e-9:
            raise ValidationError(f"{calib_path}: camera {n} has skew {i['skew']}; unsupported")
        K = np.array([[i["fx"], 0.0, i["cx"]], [0.0, i["fy"], i["cy"]], [0.0, 0.0, 1.0]], dtype=np.float64)
        im0 = frames[0]["images"][n]
        cameras[n] = {"K": K, "cam_to_ego": extrinsics[n], "width": im0["width"], "height": im0["height"]}
    return {
        "scene_json": scene_json,
        "root": root,
        "scene": scene,
        "cameras": cameras,
        "extrinsics": extrinsics,
        "frames": frames,
    }


def _read_points(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arr = z["data"] if "data" in z else z[next(iter(z.keys()))]
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: point cloud not found") from None
    except (OSError, ValueError, KeyError, StopIteration) as e:
        raise FormatError(f"{path}: cannot read point cloud ({e})") from None
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise FormatError(f"{path}: expected points [M, >=3], got {list(arr.shape)}")
    arr = arr.astype(np.float64)
    keep = np.all(np.isfinite(arr[:, :3]), axis=1)
    inten = arr[keep, 3].astype(np.float32) if arr.shape[1] > 3 else None
    return arr[keep, :3], inten


def _box_ontology(sc: dict[str, Any]) -> dict[int, str]:
    """Class id → name of the scene's 3D-box ontology (``ontologies["1"]``)."""
    key = (sc["scene"].get("ontologies") or {}).get(BOUNDING_BOX_3D)
    if not isinstance(key, str):
        raise FormatError(f"{sc['scene_json']}: datums have 3D box annotations but 'ontologies' has no "
                          f"{BOUNDING_BOX_3D!r} (bounding_box_3d) entry naming their ontology "
                          "(--no-actors / actors=False converts without the boxes)")
    path = sc["root"] / "ontology" / f"{key}.json"
    try:
        return {int(i["id"]): str(i["name"]) for i in read_json(path)["items"]}
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"{path}: expected {{items: [{{id, name}}, ...]}}") from None


def read_dgp_boxes(sc: dict[str, Any]) -> list[Box]:
    """The scene's 3D boxes (``bounding_box_3d`` annotations), one :class:`Box` per object and
    sample, posed in the DGP world frame (the frame of the ego poses the converter writes).

    A box's ``pose`` is box-to-sensor in the frame of the datum it annotates, so box-to-world =
    that datum's sensor-to-world @ pose; box axes x = length, y = width, z = height. A sample's
    point-cloud annotations are read first, then its images'; an object seen by several datums
    of one sample keeps the first (in DDAD every datum's box is the same world box).
    """
    boxes: list[Box] = []
    names: dict[int, str] | None = None
    for fi, fr in enumerate(sc["frames"]):
        seen: dict[str, tuple[Path, str]] = {}  # object id -> (file, entry) of its box in this sample
        for d in ([fr["lidar"]] if fr["lidar"] is not None else []) + list(fr["images"].values()):
            path = d["boxes_3d"]
            if path is None:
                continue
            if names is None:
                names = _box_ontology(sc)
            anns = read_json(path)
            anns = anns.get("annotations", []) if isinstance(anns, dict) else None
            if not isinstance(anns, list):
                raise FormatError(f"{path}: expected {{annotations: [...]}} (DGP BoundingBox3DAnnotations)")
            for i, a in enumerate(anns):
                w = f"{path}: annotations[{i}]"
                try:
                    # protobuf JSON may leave out zero values: class_id 0 is a class
                    b, cls, tid = a["box"], int(a.get("class_id", 0)), str(int(a["instance_id"]))
                    size = (b["length"], b["width"], b["height"])
                    pose = b["pose"]
                except (KeyError, TypeError, ValueError):
                    raise FormatError(f"{w}: expected box {{pose, length, width, height}}, class_id and "
                                      "instance_id") from None
                if cls not in names:
                    raise FormatError(f"{w}: class_id {cls} is not in the scene's 3D box ontology "
                                      f"(ids {sorted(names)})")
                if tid in seen:
                    if seen[tid][0] == path:
                        raise ValidationError(f"{w}: instance_id {tid} appears twice in this file "
                                              f"(also {seen[tid][1]})")
                    continue
                seen[tid] = (path, w)
                boxes.append(Box(tid, names[cls], fi, d["sensor_to_world"] @ _pose(pose, f"{w}.box.pose"),
                                 check_size(size, f"{w}.box"), None, w))
    return boxes


def convert_dgp(src: str | Path, dst: str | Path, *, overwrite: bool = False, actors: bool = True,
                masks: str | Path | None = None, **_: Any) -> Path:
    """Convert one DGP scene directory ``src`` into a clip at ``dst``.

    ``actors``: convert the ``bounding_box_3d`` annotations into actor tracks (default; a scene
    without them has none); False skips them. ``masks``: a directory of ``<camera>.png`` validity
    masks (e.g. DDAD's self-occlusion masks; :mod:`splatnet.clip.convert._masks`).
    """
    sc = read_dgp_scene(src)
    cams = [
        CameraSpec(n, c["K"], c["width"], c["height"], c["cam_to_ego"], role="rig")
        for n, c in sc["cameras"].items()
    ]
    frames, images, lidar = [], {}, {}
    for fi, fr in enumerate(sc["frames"]):
        cam_ego = {
            n: im["sensor_to_world"] @ inv_rigid(sc["extrinsics"][n]) for n, im in fr["images"].items()
        }
        lid = fr["lidar"]
        if lid is not None:
            ego = lid["sensor_to_world"] @ inv_rigid(sc["extrinsics"][lid["name"]])
        else:
            ego = cam_ego[cams[0].name]
        frames.append(
            FrameSpec(
                timestamp=fr["timestamp"],
                ego_to_world=ego,
                camera_timestamps={n: im["timestamp"] for n, im in fr["images"].items()},
                camera_ego_to_world=cam_ego,
            )
        )
        for n, im in fr["images"].items():
            images[(fi, n)] = im["path"]
        if lid is not None:
            pts, inten = _read_points(lid["path"])
            pts_ego = transform_points(sc["extrinsics"][lid["name"]], pts)
            lidar[fi] = LidarSpec(
                pts_ego.astype(np.float32),
                frame="ego",
                intensity=inten,
                timestamp=lid["timestamp"],
                ego_to_world=ego,
            )
    meta = {
        "source": {
            "kind": "dgp",
            "scene": str(sc["scene_json"]),
            "log": sc["scene"].get("log", ""),
            "name": sc["scene"].get("name", ""),
            "sample_timestamps_iso": [fr["iso"] for fr in sc["frames"]],
        }
    }
    tracks = actors_from_boxes(read_dgp_boxes(sc)) if actors else []
    return write_clip(dst, cams, frames, images, lidar=lidar, metadata=meta, overwrite=overwrite,
                      actors=tracks or None, masks=camera_masks(masks, cams) or None)
