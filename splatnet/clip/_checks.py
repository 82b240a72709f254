"""Validation helpers shared by the clip writer, loader and converters.

Every function raises :class:`~splatnet.errors.ValidationError` (or ``FormatError``) whose
message starts with ``where`` (a file name or manifest field), so a user can find the problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import torch

from splatnet._limits import MAX_STORED_IMAGE_PIXELS, MAX_STORED_IMAGE_SIDE
from splatnet.errors import FormatError, ValidationError

FORMAT_NAME = "splatnet-clip"
FORMAT_VERSION = 1
#: Versions this splatnet reads: 1 (1.0) and 1.1 (adds ``actors``). The writer writes 1 for a
#: clip without actors, so older readers keep reading it, and 1.1 for a clip with them.
READ_VERSIONS = (1, 1.1)
ACTORS_VERSION = 1.1
MANIFEST_NAME = "clip.json"
CAMERA_ROLES = ("rig", "target")
LIDAR_FRAMES = ("ego", "world")
WORLD_FRAMES = ("first_ego", "poses")
#: Default quantisation of 16-bit PNG depth maps: metres per unit (KITTI convention, max 256 m).
DEFAULT_DEPTH_SCALE = 1.0 / 256.0

# Camera names become directory names: keep them to a portable, traversal-free alphabet.
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")

#: Tolerance on ``R^T R = I`` and ``det R = 1`` for a pose to count as rigid.
RIGID_ATOL = 1e-4

#: Largest distance (metres) of a pose or point from the clip's world origin, i.e. after the
#: ``first_ego`` re-expression. A driving clip spans a few hundred metres; beyond 1e6 m float32
#: coordinates are quantised to 6 cm or worse and renders fall apart, and larger values are
#: typos or corrupt data (a 1e20 m translation would otherwise reach the exported PLY).
MAX_WORLD_DISTANCE = 1e6

#: Focal lengths ``fx / width`` and ``fy / height`` must lie in this range: 1e-3 is a
#: 179.9-degree field of view, 1e3 a 0.06-degree one; anything outside is a unit or typing error
#: (``1e300`` would overflow float32, ``1e-300`` round to zero).
FOCAL_RANGE = (1e-3, 1e3)
#: The principal point may lie at most this many image widths (heights) from the image.
MAX_PRINCIPAL_OFFSET = 1e3

#: Deepest JSON nesting accepted in a manifest (its own structure needs 6 levels; the rest is
#: room for ``metadata``). Far below Python's recursion limit, so parsing, checking and
#: re-serialising a manifest never raise ``RecursionError``.
MAX_JSON_DEPTH = 64


def check_camera_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise ValidationError(
            f"{where}: camera name {name!r} is invalid; use 1-128 characters from "
            "[A-Za-z0-9_.-], not starting with '.' or '-'"
        )
    return name


def _check_numbers(value: object, shape: tuple[int, int], where: str) -> None:
    """Nested lists (as JSON gives them) must hold numbers only: no strings, booleans or None."""
    if not isinstance(value, (list, tuple)):
        return
    for i, row in enumerate(value):
        if not isinstance(row, (list, tuple)):
            if isinstance(row, (str, bytes)) or np.ndim(row) == 0:
                raise ValidationError(
                    f"{where}: row {i} must be a list of numbers, got {row!r}; expected a "
                    f"{shape[0]}x{shape[1]} matrix written as a list of rows"
                )
            continue  # an array row: its dtype is checked below
        for j, x in enumerate(row):
            if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
                raise ValidationError(f"{where}: entry [{i}][{j}] must be a number, got {x!r}")


def as_matrix(value: object, shape: tuple[int, int], where: str) -> np.ndarray:
    """Convert ``value`` (nested lists, array, tensor) to a finite float64 array of ``shape``.

    Entries must be real numbers: strings (``"1"``), booleans and ``None`` are refused even
    where NumPy would convert them.
    """
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise ValidationError(f"{where}: expected a matrix of real numbers, got a {value.dtype} tensor")
        value = value.detach().cpu().double().numpy()
    _check_numbers(value, shape, where)
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise ValidationError(f"{where}: expected a {shape[0]}x{shape[1]} matrix of numbers ({e})") from None
    if raw.dtype.kind == "O":
        _check_numbers(raw.tolist(), shape, where)
    elif raw.dtype.kind not in "iuf":
        kind = "bool" if raw.dtype.kind == "b" else str(raw.dtype)
        raise ValidationError(f"{where}: expected a matrix of real numbers, got dtype {kind}")
    if raw.shape != shape:
        raise ValidationError(
            f"{where}: expected a {shape[0]}x{shape[1]} matrix, got shape {list(raw.shape)}"
        )
    arr = raw.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValidationError(f"{where}: matrix contains NaN or infinite values: {arr.tolist()}")
    return arr


def check_rigid(value: object, where: str) -> np.ndarray:
    """A finite 4x4 rigid transform ``[[R, t], [0, 0, 0, 1]]`` with ``R`` a rotation."""
    T = as_matrix(value, (4, 4), where)
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise ValidationError(f"{where}: last row of a pose must be [0, 0, 0, 1], got {T[3].tolist()}")
    R = T[:3, :3]
    orth_err = float(np.abs(R.T @ R - np.eye(3)).max())
    det = float(np.linalg.det(R))
    if orth_err > RIGID_ATOL or abs(det - 1.0) > RIGID_ATOL:
        raise ValidationError(
            f"{where}: pose is not rigid (max |R^T R - I| = {orth_err:.3g}, det R = {det:.6g}); "
            "rotations must be orthonormal with determinant +1"
        )
    return T


def check_intrinsics(value: object, width: int, height: int, where: str) -> np.ndarray:
    """A pinhole matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` for a ``width x height`` image.

    ``fx / width`` and ``fy / height`` must lie in :data:`FOCAL_RANGE`, and the principal point
    within :data:`MAX_PRINCIPAL_OFFSET` image sizes of the image.
    """
    K = as_matrix(value, (3, 3), where)
    if K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1 or abs(K[0, 1]) > 1e-6 * abs(K[0, 0]):
        raise ValidationError(
            f"{where}: intrinsics must have the form [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] "
            f"(no skew), got {K.tolist()}"
        )
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValidationError(f"{where}: focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
    lo, hi = FOCAL_RANGE
    for label, f, c, size, dim in (("fx", K[0, 0], K[0, 2], width, "width"),
                                   ("fy", K[1, 1], K[1, 2], height, "height")):
        if not lo * size <= f <= hi * size:
            raise ValidationError(
                f"{where}: {label} = {f:.6g} px is out of range for an image {size} px in {dim}: "
                f"focal lengths must lie in [{lo:g}, {hi:g}] x the image {dim} "
                f"([{lo * size:.6g}, {hi * size:.6g}] px)"
            )
        pp = "cx" if label == "fx" else "cy"
        if not abs(c - size / 2) <= MAX_PRINCIPAL_OFFSET * size:
            raise ValidationError(
                f"{where}: principal point {pp} = {c:.6g} px lies more than {MAX_PRINCIPAL_OFFSET:g} "
                f"image {dim}s ({size} px) from the image centre"
            )
    K[0, 1] = 0.0
    return K


def check_size(width: object, height: object, where: str) -> tuple[int, int]:
    for label, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 < v <= 65535:
            raise ValidationError(f"{where}: {label} must be an integer in [1, 65535], got {v!r}")
    return int(width), int(height)


def check_image_size(width: int, height: int, where: str, label: str = "image is") -> None:
    """A stored image's ``width x height`` within ``splatnet._limits``' stored-image bounds."""
    if max(width, height) > MAX_STORED_IMAGE_SIDE or width * height > MAX_STORED_IMAGE_PIXELS:
        raise ValidationError(
            f"{where}: {label} {width}x{height} ({width * height / 1e6:.1f} MP), over splatnet's "
            f"limit of {MAX_STORED_IMAGE_SIDE} px a side and {MAX_STORED_IMAGE_PIXELS / 1e6:.1f} MP "
            f"({MAX_STORED_IMAGE_PIXELS} pixels); downscale it"
        )


def check_json_depth(
    obj: object, where: str, error: type[Exception] = ValidationError, limit: int = MAX_JSON_DEPTH
) -> None:
    """Refuse JSON-like data nested deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            raise error(f"{where}: JSON nested deeper than {limit} levels")
        stack.extend((c, depth + 1) for c in children)


def inv_rigid(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (exact: transpose the rotation)."""
    out = np.eye(4)
    R = T[:3, :3]
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ T[:3, 3]
    return out


def world_from_poses(first_ego_to_world: np.ndarray, world_frame: str) -> np.ndarray:
    """The transform the loader applies to every pose and world-frame point."""
    return inv_rigid(first_ego_to_world) if world_frame == "first_ego" else np.eye(4)


def _distance_note(world_frame: str) -> str:
    if world_frame == "first_ego":
        return " (after re-expressing poses relative to the first ego pose)"
    return (
        "; with world_frame 'poses' coordinates stay as written: use world_frame 'first_ego' "
        "for logs in large world coordinates"
    )


def check_world_distance(T: np.ndarray, where: str, world_frame: str, what: str = "pose") -> None:
    """The translation of ``T`` (already in the clip's world frame) is within MAX_WORLD_DISTANCE."""
    with np.errstate(over="ignore", invalid="ignore"):
        d = float(np.linalg.norm(T[:3, 3]))
    if not d <= MAX_WORLD_DISTANCE:
        raise ValidationError(
            f"{where}: {what} is {d:.3g} m from the clip's world origin; limit "
            f"{MAX_WORLD_DISTANCE:g} m{_distance_note(world_frame)}"
        )


def check_translation(T: np.ndarray, where: str) -> None:
    """A camera-to-ego (or similar local) transform moves at most MAX_WORLD_DISTANCE."""
    with np.errstate(over="ignore", invalid="ignore"):
        d = float(np.linalg.norm(T[:3, 3]))
    if not d <= MAX_WORLD_DISTANCE:
        t = ", ".join(f"{x:.6g}" for x in T[:3, 3])
        raise ValidationError(
            f"{where}: translation [{t}] is {d:.3g} m long; limit {MAX_WORLD_DISTANCE:g} m"
        )


def check_points(raw: np.ndarray, to_world: np.ndarray, where: str, world_frame: str) -> np.ndarray:
    """``[M, 3]`` points mapped by ``to_world`` (float64): finite and within MAX_WORLD_DISTANCE."""
    finite = np.isfinite(raw).all(axis=-1)
    if not finite.all():
        raise ValidationError(
            f"{where}: {int((~finite).sum())} of {len(raw)} points are NaN or infinite"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        pts = raw.astype(np.float64) @ to_world[:3, :3].T + to_world[:3, 3]
        d = np.linalg.norm(pts, axis=-1)
    far = ~(d <= MAX_WORLD_DISTANCE)
    if far.any():
        raise ValidationError(
            f"{where}: {int(far.sum())} of {len(raw)} points lie farther than "
            f"{MAX_WORLD_DISTANCE:g} m from the clip's world origin (farthest {float(np.max(d)):.3g} m); "
            f"limit {MAX_WORLD_DISTANCE:g} m{_distance_note(world_frame)}"
        )
    return pts


def check_timestamp(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValidationError(f"{where}: timestamp must be a number (seconds), got {value!r}")
    t = float(value)
    if not math.isfinite(t):
        raise ValidationError(f"{where}: timestamp must be finite, got {t}")
    return t


def check_increasing(timestamps: Sequence[float], where: str) -> None:
    for i in range(1, len(timestamps)):
        if not timestamps[i] > timestamps[i - 1]:
            raise ValidationError(
                f"{where}: frame timestamps must increase strictly; frame {i} has "
                f"{timestamps[i]!r} after {timestamps[i - 1]!r}"
            )


def check_choice(value: object, choices: Sequence[str], where: str) -> str:
    if value not in choices:
        raise ValidationError(f"{where}: must be one of {list(choices)}, got {value!r}")
    return value  # type: ignore[return-value]


def check_keys(obj: object, allowed: Sequence[str], required: Sequence[str], where: str) -> dict:
    """``obj`` is a dict with all ``required`` keys and no key outside ``allowed``."""
    if not isinstance(obj, dict):
        raise FormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise FormatError(f"{where}: missing required field(s) {missing}")
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise FormatError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    return obj


def matrix_to_json(m: np.ndarray) -> list[list[float]]:
    """Nested lists of Python floats (``json`` writes them with full float64 precision)."""
    return [[float(x) for x in row] for row in np.asarray(m, dtype=np.float64)]
