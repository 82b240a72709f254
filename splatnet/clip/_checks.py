"""Validation helpers shared by the clip writer, loader and converters.

Every function raises :class:`~splatnet.errors.ValidationError` (or ``FormatError``) whose
message starts with ``where`` (a file name or manifest field), so a user can find the problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from splatnet.errors import FormatError, ValidationError

FORMAT_NAME = "splatnet-clip"
FORMAT_VERSION = 1
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


def check_camera_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise ValidationError(
            f"{where}: camera name {name!r} is invalid; use 1-128 characters from "
            "[A-Za-z0-9_.-], not starting with '.' or '-'"
        )
    return name


def as_matrix(value: object, shape: tuple[int, int], where: str) -> np.ndarray:
    """Convert ``value`` (nested lists, array, tensor) to a finite float64 array of ``shape``."""
    try:
        if hasattr(value, "detach"):  # torch tensor
            value = value.detach().cpu().double().numpy()
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValidationError(f"{where}: expected a {shape[0]}x{shape[1]} matrix of numbers ({e})") from None
    if arr.shape != shape:
        raise ValidationError(
            f"{where}: expected a {shape[0]}x{shape[1]} matrix, got shape {list(arr.shape)}"
        )
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


def check_intrinsics(value: object, where: str) -> np.ndarray:
    """A pinhole matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` with ``fx, fy > 0``."""
    K = as_matrix(value, (3, 3), where)
    if K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1 or abs(K[0, 1]) > 1e-6 * abs(K[0, 0]):
        raise ValidationError(
            f"{where}: intrinsics must have the form [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] "
            f"(no skew), got {K.tolist()}"
        )
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValidationError(f"{where}: focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
    K[0, 1] = 0.0
    return K


def check_size(width: object, height: object, where: str) -> tuple[int, int]:
    for label, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 < v <= 65535:
            raise ValidationError(f"{where}: {label} must be an integer in [1, 65535], got {v!r}")
    return int(width), int(height)


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
