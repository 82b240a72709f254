"""PandaSet sequence (Hesai and Scale AI) → splatnet clip.

Input: one sequence directory of a PandaSet download (e.g. ``002/``) holding
``camera/<name>_camera/{NN.jpg, intrinsics.json, poses.json, timestamps.json}`` and
``lidar/{NN.pkl.gz, poses.json, timestamps.json}`` and optionally ``annotations/cuboids/NN.pkl.gz``
(the 3D boxes, converted into actor tracks; other annotations are not converted).

**The LiDAR sweeps are pickles** (gzipped pandas DataFrames) and unpickling can execute code:
convert only your own PandaSet download, never files from an untrusted source. As a second line
of defence the sweeps are unpickled with an allow-list of the pandas / numpy classes a DataFrame
needs, so a pickle that names anything else (``os.system``, ``builtins.eval``, …) is refused;
that narrows the attack surface but is no proof of safety. Reading them needs pandas
(``pip install 'splatnet[pandaset]'``).

Conventions read from the data (and checked by projecting the LiDAR into the images, see the
tests): ``poses.json`` holds one pose per frame, ``position`` x/y/z and ``heading`` a Hamilton
quaternion w/x/y/z; camera poses are camera-to-world with OpenCV camera frames (x right, y down,
z forward); ``intrinsics.json`` holds pinhole ``fx fy cx cy`` in pixels (PandaSet images are
undistorted); the LiDAR pose is the Pandar64's sensor-to-world, its frame x right, y forward,
z up; sweep points (columns x, y, z, i, t, d) are in world coordinates already; timestamps are
Unix seconds.

Mapping: one clip frame per PandaSet frame (``frames`` selects a subset); the frame's
timestamp is the LiDAR sweep's. The **ego frame** is the LiDAR's frame turned to x forward,
y left, z up (the vehicle-frame convention of the DGP and nuScenes converters, which
``splatnet render --shift-lateral`` relies on); its origin is the LiDAR pose's (PandaSet gives no
other vehicle reference point; the cameras sit 1.5-1.8 m above it in the sample sequence). The
frame's ego pose is the LiDAR pose so turned.

PandaSet gives each camera's pose per frame, not a rig calibration, and the cameras fire
19-100 ms before the sweep (one after the other, back camera first). The converter keeps the
data's camera poses exactly: ``cam_to_ego`` is fixed per camera and every image gets its own
ego pose ``camera_ego_to_world = camera pose @ inverse(cam_to_ego)``, so the clip's
``cam_to_world`` equals ``poses.json`` (up to float64 rounding, after the clip's own world
re-expression). ``cam_to_ego`` is estimated from the whole sequence: the ego pose at each image's
capture time is interpolated between the LiDAR poses (linear position, quaternion slerp;
extrapolated before the first sweep), and ``cam_to_ego`` is the mean of
``inverse(ego(t_image)) @ camera pose`` (rotations averaged by projection onto SO(3)). The spread
of those per-frame estimates around the mean is recorded in ``metadata.source.extrinsic_fit``
(on the sample sequence: standard deviation 1-4 mm, at most 1.7 cm and 0.08 degrees; without the
time interpolation the ego's motion between image and sweep spreads them by up to 8 cm).
Each image keeps its own capture time (``camera_timestamps``).

LiDAR: every sweep point (both sensors, column ``d``, when present) with finite coordinates,
stored in the ego frame at the sweep's ego pose, intensity from column ``i``. A missing sweep
file leaves that frame without LiDAR and is reported in one warning.

Images are copied byte for byte, or resized to ``size=(H, W)`` (antialiased bilinear, JPEG
quality 95) with the intrinsics scaled like :meth:`splatnet.Clip.views` does (``fx, cx`` by
``W / width``, ``fy, cy`` by ``H / height``).

Actors (clip format 1.1): the cuboid tables (pickles too, read the same way) hold one row per
object and frame, in world coordinates at the sweep's time: ``uuid`` (the track id), ``label``,
``position.{x,y,z}`` (the centre), ``dimensions.{x,y,z}`` = width, length, height and ``yaw``
about world +z. The cuboid's forward direction (its length) is its local +y turned by ``yaw``, so
the clip box (x = length, forward; y = width, left) is the cuboid turned by a further +90° about z
(:data:`BOX_IN_CUBOID`; checked against the LiDAR points and the direction the tracks move, see
the tests). ``moving`` = ``attributes.object_motion`` ("Moving" vs "Parked" / "Stopped") where
given, else ``not stationary`` (pedestrians, cones). Objects in the overlap of PandaSet's two
LiDARs are labelled twice (``cuboids.sensor_id`` 0 and 1, linked by ``cuboids.sibling_id``); the
360° Pandar64's box is kept, the front PandarGT's copy dropped. Track frames are the clip's: with
``frames`` a subset, a track keeps the converted frames it has a box in. A missing cuboid table
leaves its frame without boxes (one warning, ``metadata.source.frames_without_cuboids``); a
sequence without ``annotations/cuboids/`` has no actors.
"""

from __future__ import annotations

import gzip
import inspect
import math
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from splatnet._optional import require
from splatnet.clip._files import probe_image, read_json, read_rgb
from splatnet.clip.actors import yaw_pose
from splatnet.clip.convert._geom import inv_rigid, pose, quat_to_rot, transform_points
from splatnet.clip.convert._masks import camera_masks
from splatnet.clip.convert._tracks import Box, actors_from_boxes, check_size
from splatnet.clip.writer import CameraSpec, FrameSpec, LidarSpec, write_clip
from splatnet.errors import FormatError, ValidationError

#: PandaSet's camera directories, in the order the clip lists them; others found are appended.
CAMERAS = (
    "front_camera",
    "front_left_camera",
    "front_right_camera",
    "left_camera",
    "right_camera",
    "back_camera",
)

#: ego → LiDAR rotation: ego x (forward) = LiDAR +y, ego y (left) = LiDAR -x, ego z = LiDAR z.
EGO_TO_LIDAR = np.array(
    [[0.0, -1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)

# ------------------------------------------------------------------------------- JSON


def _json_list(path: Path, what: str) -> list[Any]:
    data = read_json(path)
    if not isinstance(data, list) or not data:
        raise FormatError(f"{path}: expected a non-empty JSON list of {what}")
    return data


def _read_poses(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``poses.json`` → (quaternions w, x, y, z ``[N, 4]``, positions ``[N, 3]``), float64."""
    quats, positions = [], []
    for i, p in enumerate(_json_list(path, "poses")):
        try:
            h, t = p["heading"], p["position"]
            quats.append([float(h["w"]), float(h["x"]), float(h["y"]), float(h["z"])])
            positions.append([float(t["x"]), float(t["y"]), float(t["z"])])
        except (KeyError, TypeError, ValueError):
            raise FormatError(
                f"{path}: pose {i}: expected {{position: {{x, y, z}}, heading: {{w, x, y, z}}}}"
            ) from None
    q, t = np.array(quats), np.array(positions)
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))):
        bad = int(np.flatnonzero(~(np.isfinite(q).all(1) & np.isfinite(t).all(1)))[0])
        raise ValidationError(f"{path}: pose {bad} has a non-finite number")
    q /= np.linalg.norm(q, axis=1, keepdims=True).clip(min=1e-12)
    return q, t


def _poses_to_matrices(q: np.ndarray, t: np.ndarray, path: Path) -> np.ndarray:
    return np.stack([pose(quat_to_rot(qi, f"{path}: pose {i}"), ti) for i, (qi, ti) in enumerate(zip(q, t))])


def _read_timestamps(path: Path, n: int) -> np.ndarray:
    ts = _json_list(path, "timestamps")
    try:
        out = np.array([float(v) for v in ts])
    except (TypeError, ValueError):
        raise FormatError(f"{path}: expected a list of numbers (seconds)") from None
    if len(out) != n:
        raise ValidationError(f"{path}: {len(out)} timestamps for {n} poses")
    if not np.all(np.isfinite(out)):
        raise ValidationError(f"{path}: non-finite timestamp")
    return out


def _intrinsics(path: Path) -> np.ndarray:
    d = read_json(path)
    try:
        fx, fy, cx, cy = (float(d[k]) for k in ("fx", "fy", "cx", "cy"))
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"{path}: expected numbers fx, fy, cx, cy") from None
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
        raise ValidationError(f"{path}: fx, fy must be positive and fx, fy, cx, cy finite")
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


# --------------------------------------------------------------------------- sequence


def read_pandaset(src: str | Path) -> dict[str, Any]:
    """Parse a PandaSet sequence's JSON files into numpy structures (the converter's input).

    Returns ``root``, ``num_frames``, ``lidar`` (``quats [N, 4]``, ``positions [N, 3]``,
    ``poses [N, 4, 4]`` sensor-to-world, ``timestamps [N]``) and ``cameras`` (name → ``K``,
    ``poses [N, 4, 4]`` camera-to-world, ``timestamps [N]``, ``dir``), all float64.
    """
    root = Path(src)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: PandaSet sequence directory not found")
    cam_root = root / "camera"
    if not cam_root.is_dir():
        hint = ""
        subs = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "camera").is_dir())
        if subs:
            hint = f"; this looks like the dataset root, pass one sequence, e.g. {root / subs[0]}"
        raise FormatError(f"{root}: not a PandaSet sequence (no camera/ directory){hint}")
    lidar_poses_path = root / "lidar" / "poses.json"
    lq, lt = _read_poses(lidar_poses_path)
    n = len(lq)
    lidar = {
        "quats": lq,
        "positions": lt,
        "poses": _poses_to_matrices(lq, lt, lidar_poses_path),
        "timestamps": _read_timestamps(root / "lidar" / "timestamps.json", n),
    }
    if np.any(np.diff(lidar["timestamps"]) <= 0):
        raise ValidationError(f"{root / 'lidar' / 'timestamps.json'}: timestamps are not strictly increasing")

    found = sorted(p.name for p in cam_root.iterdir() if p.is_dir() and (p / "poses.json").is_file())
    names = [c for c in CAMERAS if c in found] + [c for c in found if c not in CAMERAS]
    if not names:
        raise FormatError(f"{cam_root}: no camera directory with a poses.json")
    cameras = {}
    for name in names:
        d = cam_root / name
        q, t = _read_poses(d / "poses.json")
        if len(q) != n:
            raise ValidationError(f"{d / 'poses.json'}: {len(q)} poses, {lidar_poses_path} has {n}")
        cameras[name] = {
            "dir": d,
            "K": _intrinsics(d / "intrinsics.json"),
            "poses": _poses_to_matrices(q, t, d / "poses.json"),
            "timestamps": _read_timestamps(d / "timestamps.json", n),
        }
    return {"root": root, "num_frames": n, "lidar": lidar, "cameras": cameras}


def _qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ]
    )


def lidar_pose_at(lidar: dict[str, np.ndarray], t: float) -> np.ndarray:
    """LiDAR sensor-to-world at time ``t``: linear position and quaternion slerp between the two
    sweeps around ``t`` (the first or last two, extrapolated, outside the sequence)."""
    ts, q, p = lidar["timestamps"], lidar["quats"], lidar["positions"]
    if len(ts) == 1:
        return lidar["poses"][0].copy()
    i = int(np.clip(np.searchsorted(ts, t) - 1, 0, len(ts) - 2))
    a = (t - ts[i]) / (ts[i + 1] - ts[i])
    rel = _qmul(q[i] * np.array([1.0, -1.0, -1.0, -1.0]), q[i + 1])  # q_i^-1 q_{i+1}
    if rel[0] < 0:
        rel = -rel  # the short way round
    s = float(np.linalg.norm(rel[1:]))
    angle = 2.0 * math.atan2(s, rel[0])
    axis = rel[1:] / s if s > 0 else np.zeros(3)
    step = np.concatenate([[math.cos(a * angle / 2)], math.sin(a * angle / 2) * axis])
    return pose(quat_to_rot(_qmul(q[i], step), "slerp"), p[i] + a * (p[i + 1] - p[i]))


def _mean_rigid(Ts: np.ndarray) -> np.ndarray:
    """Chordal mean of rigid transforms: mean translation, mean rotation projected onto SO(3)."""
    U, _, Vt = np.linalg.svd(Ts[:, :3, :3].sum(0))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return pose(U @ D @ Vt, Ts[:, :3, 3].mean(0))


def fit_cam_to_ego(seq: dict[str, Any]) -> dict[str, tuple[np.ndarray, dict[str, float]]]:
    """Per camera: (``cam_to_ego``, spread of the per-frame estimates), from the whole sequence."""
    out = {}
    for name, cam in seq["cameras"].items():
        est = np.stack(
            [
                inv_rigid(lidar_pose_at(seq["lidar"], t) @ EGO_TO_LIDAR) @ C
                for t, C in zip(cam["timestamps"], cam["poses"])
            ]
        )
        X = _mean_rigid(est)
        dt = np.linalg.norm(est[:, :3, 3] - X[:3, 3], axis=1)
        cos = (np.einsum("nij,ij->n", est[:, :3, :3], X[:3, :3]) - 1.0) / 2.0
        angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
        spread = {"max_offset_m": round(float(dt.max()), 5), "max_angle_deg": round(float(angle.max()), 5)}
        out[name] = (X, spread)
    return out


# ------------------------------------------------------------------------------ LiDAR

_PANDAS_MODULES = (
    "pandas.core.frame",
    "pandas.core.series",
    "pandas.core.internals",
    "pandas.core.indexes",
    "pandas.core.arrays",
    "pandas.core.dtypes",
    "pandas._libs.internals",
    "pandas._libs.tslibs",
    "pandas._libs.arrays",
    "pandas._libs.sparse",
    "pandas._libs.interval",
    "pandas._libs.missing",
)
_ALLOWED_NAMES = {
    ("pandas", "DataFrame"),
    ("pandas", "Series"),
    ("pandas", "Index"),
    ("pandas", "RangeIndex"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "slice"),
    ("builtins", "range"),
    ("builtins", "complex"),
    ("builtins", "frozenset"),
    ("builtins", "set"),
    ("builtins", "bytearray"),
}


class _DataFrameUnpickler(pickle.Unpickler):
    """Unpickles only the classes and functions a plain pandas DataFrame is made of."""

    def find_class(self, module: str, name: str) -> Any:
        ok = (module, name) in _ALLOWED_NAMES or (
            "." not in name and any(module == m or module.startswith(m + ".") for m in _PANDAS_MODULES)
        )
        obj = super().find_class(module, name) if ok else None
        if obj is None or inspect.ismodule(obj):
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name}: not part of a pandas DataFrame"
            )
        return obj


def _read_dataframe(path: Path, what: str, columns: Sequence[str]) -> Any:
    """A gzipped pickled DataFrame (``what`` names it in errors) holding at least ``columns``.

    Pickles can execute code when loaded: call this on your own dataset files only.
    """
    pd = require("pandas", f"reading PandaSet's {what}s (pickled pandas DataFrames)", extra="pandaset")
    try:
        with gzip.open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core in older pickles
            df = _DataFrameUnpickler(f).load()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError,
            ValueError) as e:
        raise FormatError(f"{path}: cannot read the {what} ({e})") from None
    if not isinstance(df, pd.DataFrame):
        raise FormatError(f"{path}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FormatError(f"{path}: the {what} has no column(s) {missing} (columns: {list(df.columns)})")
    return df


def read_sweep(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """One PandaSet sweep (``NN.pkl.gz``) → world-frame xyz ``[M, 3]`` float64, intensity ``[M]``.

    Pickles can execute code when loaded: call this on your own dataset files only.
    """
    df = _read_dataframe(path, "LiDAR sweep", ("x", "y", "z"))
    try:
        xyz = df[["x", "y", "z"]].to_numpy(dtype=np.float64)
        inten = df["i"].to_numpy(dtype=np.float32) if "i" in df.columns else None
    except (TypeError, ValueError) as e:
        raise FormatError(f"{path}: columns x, y, z, i must be numeric ({e})") from None
    keep = np.all(np.isfinite(xyz), axis=1)
    return xyz[keep], (inten[keep] if inten is not None else None)


# ---------------------------------------------------------------------------- cuboids

#: PandaSet cuboid axes → clip box axes. A cuboid's ``dimensions.x`` is its width and
#: ``dimensions.y`` its length, ``yaw`` turns its local +y (the object's forward direction, checked
#: against the tracks' motion) about world +z; the clip's box has x = length (forward), y = width
#: (left): box x = cuboid +y, box y = cuboid -x, z = z.
BOX_IN_CUBOID = EGO_TO_LIDAR
_CUBOID_COLUMNS = ("uuid", "label", "yaw", "position.x", "position.y", "position.z",
                   "dimensions.x", "dimensions.y", "dimensions.z")
#: ``cuboids.sensor_id`` of the boxes the front-facing PandarGT labels again: objects in the overlap
#: of PandaSet's two LiDARs have a box for each (``cuboids.sibling_id`` links them); the converter
#: keeps the 360° Pandar64's (sensor 0; -1 = outside the overlap).
_SECOND_LIDAR = 1
_MOTION = {"Moving": True, "Parked": False, "Stopped": False}


def read_cuboids(path: Path, frame: int) -> list[Box]:
    """One PandaSet cuboid table (``annotations/cuboids/NN.pkl.gz``) → boxes of clip ``frame``.

    World-frame (PandaSet's) poses; track = ``uuid``; size = (``dimensions.y``, ``dimensions.x``,
    ``dimensions.z``) = (length, width, height); moving = ``attributes.object_motion`` ("Moving" vs
    "Parked" / "Stopped") where given, else ``not stationary``. Rows of the second LiDAR
    (``cuboids.sensor_id == 1``) are skipped. Pickles can execute code: trusted files only.
    """
    df = _read_dataframe(path, "cuboid table", _CUBOID_COLUMNS)
    if "cuboids.sensor_id" in df.columns:
        df = df[df["cuboids.sensor_id"].to_numpy() != _SECOND_LIDAR]
    try:
        num = df[["position.x", "position.y", "position.z", "yaw", "dimensions.y", "dimensions.x",
                  "dimensions.z"]].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise FormatError(f"{path}: position, yaw and dimensions must be numeric ({e})") from None

    def column(name: str) -> list[Any]:
        return df[name].tolist() if name in df.columns else [None] * len(df)

    boxes = []
    for row, uuid, label, v, mo, st in zip(df.index.tolist(), column("uuid"), column("label"), num,
                                           column("attributes.object_motion"), column("stationary")):
        where = f"{path}: row {row} (uuid {uuid!r})"
        if not isinstance(uuid, str) or not isinstance(label, str):
            raise FormatError(f"{where}: uuid and label must be strings")
        if not np.all(np.isfinite(v[:4])):
            raise ValidationError(f"{where}: position and yaw must be finite, got {v[:4].tolist()}")
        T = yaw_pose(v[0], v[1], v[2], v[3])
        moving = _MOTION.get(mo) if isinstance(mo, str) else None
        if moving is None and isinstance(st, (bool, np.bool_)):
            moving = not bool(st)
        boxes.append(Box(uuid, label, frame, T @ BOX_IN_CUBOID, check_size(v[4:], where), moving, where))
    return boxes


# -------------------------------------------------------------------------- converter


def _frame_ids(frames: slice | Sequence[int] | None, n: int) -> list[int]:
    if frames is None:
        return list(range(n))
    if isinstance(frames, slice):
        ids = list(range(n))[frames]
        if not ids:
            raise ValidationError(
                f"frames: {frames.start}:{frames.stop} selects no frame of the sequence's {n}"
            )
        return ids
    ids = []
    for f in frames:
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not 0 <= f < n:
            raise ValidationError(f"frames: {f!r} is not a frame index of the sequence's {n} (0-{n - 1})")
        ids.append(int(f))
    if not ids:
        raise ValidationError("frames: empty selection")
    if any(b <= a for a, b in zip(ids, ids[1:])):
        raise ValidationError(f"frames: indices must be strictly increasing, got {ids}")
    return ids


def _check_size(size: Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        h, w = size
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValidationError(f"size: expected (height, width) as positive integers, got {size!r}")
    return int(h), int(w)


def convert_pandaset(
    src: str | Path,
    dst: str | Path,
    *,
    frames: slice | Sequence[int] | None = None,
    size: Sequence[int] | None = None,
    overwrite: bool = False,
    actors: bool = True,
    masks: str | Path | None = None,
    **unknown: Any,
) -> Path:
    """Convert one PandaSet sequence directory ``src`` into a clip at ``dst``.

    ``frames``: a slice or increasing indices of the sequence's frames (default all);
    ``size``: ``(H, W)`` to resize every image to (default: copy the images unchanged);
    ``overwrite``: replace ``dst`` if it is an existing clip; ``actors``: convert the cuboids
    (``annotations/cuboids/``, when present) into actor tracks (default), False skips them. The
    LiDAR sweeps and cuboid tables are pickles: use this on your own PandaSet download only (see
    the module docstring).
    """
    if unknown:
        raise ValidationError(f"pandaset converter: unsupported option(s) {sorted(unknown)}")
    size = _check_size(size)
    seq = read_pandaset(src)
    root = seq["root"]
    ids = _frame_ids(frames, seq["num_frames"])
    fits = fit_cam_to_ego(seq)

    cams, images = [], {}
    for name, cam in seq["cameras"].items():
        paths = [cam["dir"] / f"{i:02d}.jpg" for i in ids]
        infos = [probe_image(p) if p.is_file() else None for p in paths]
        for p, info in zip(paths, infos):
            if info is None:
                raise FileNotFoundError(f"{p}: image not found")
            if (info.width, info.height) != (infos[0].width, infos[0].height):
                raise ValidationError(
                    f"{p}: image is {info.width}x{info.height}, {paths[0].name} of the same camera is "
                    f"{infos[0].width}x{infos[0].height}"
                )
        width, height = infos[0].width, infos[0].height
        K = cam["K"].copy()
        if size is not None and size != (height, width):
            K[0] *= size[1] / width
            K[1] *= size[0] / height
            height, width = size
            for fi, p in enumerate(paths):
                images[(fi, name)] = lambda p=p: read_rgb(p, size)
        else:
            for fi, p in enumerate(paths):
                images[(fi, name)] = p
        cams.append(CameraSpec(name, K, width, height, fits[name][0]))

    clip_frames, lidar, no_lidar = [], {}, []
    lid = seq["lidar"]
    for fi, i in enumerate(ids):
        ego = lid["poses"][i] @ EGO_TO_LIDAR
        clip_frames.append(
            FrameSpec(
                timestamp=float(lid["timestamps"][i]),
                ego_to_world=ego,
                camera_timestamps={n: float(c["timestamps"][i]) for n, c in seq["cameras"].items()},
                camera_ego_to_world={
                    n: c["poses"][i] @ inv_rigid(fits[n][0]) for n, c in seq["cameras"].items()
                },
            )
        )
        sweep = root / "lidar" / f"{i:02d}.pkl.gz"
        if not sweep.is_file():
            no_lidar.append(i)
            continue
        xyz, inten = read_sweep(sweep)
        lidar[fi] = LidarSpec(
            transform_points(inv_rigid(ego), xyz).astype(np.float32),
            frame="ego",
            intensity=inten,
            timestamp=float(lid["timestamps"][i]),
            ego_to_world=ego,
        )
    if no_lidar:
        warnings.warn(
            f"{root / 'lidar'}: no sweep for frame(s) {no_lidar} "
            f"({', '.join(f'{i:02d}.pkl.gz' for i in no_lidar)} missing); those frames have no LiDAR",
            stacklevel=2,
        )
    boxes, no_cuboids = [], []
    cuboid_dir = root / "annotations" / "cuboids"
    if actors and cuboid_dir.is_dir():
        for fi, i in enumerate(ids):
            path = cuboid_dir / f"{i:02d}.pkl.gz"
            if path.is_file():
                boxes += read_cuboids(path, fi)
            else:
                no_cuboids.append(i)
        if no_cuboids:
            warnings.warn(
                f"{cuboid_dir}: no cuboid table for frame(s) {no_cuboids}; no actor has a box there",
                stacklevel=2,
            )
    tracks = actors_from_boxes(boxes)
    meta = {
        "source": {
            "kind": "pandaset",
            "sequence": str(root),
            "frames": ids,
            "frames_without_lidar": no_lidar,
            "frames_without_cuboids": no_cuboids,
            "ego_frame": "PandaSet LiDAR frame turned to x forward, y left, z up (origin: the LiDAR)",
            "extrinsic_fit": {n: f[1] for n, f in fits.items()},
            "attribution": "PandaSet by Hesai and Scale AI (CC BY 4.0)",
        }
    }
    return write_clip(dst, cams, clip_frames, images, lidar=lidar, metadata=meta, overwrite=overwrite,
                      actors=tracks or None, masks=camera_masks(masks, cams) or None)
