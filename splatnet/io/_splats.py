"""What every delivery-format writer and reader shares: Gaussians as plain float64 NumPy arrays,
prepared for export (one scene, finite rows, DC colours a viewer can show), the fields a reader
returns, the file checks every reader makes first, and the one axis change a format may need.

Arrays (``SplatArrays``), activated as in memory (docs/conventions.md): ``means [N, 3]``,
``quats [N, 4]`` w-x-y-z (unit length after :func:`export_arrays`), ``scales [N, 3]`` (> 0),
``opacities [N]`` in [0, 1], ``sh [N, K, 3]``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from splatnet.errors import FormatError, ValidationError
from splatnet.io.colours import fit_colours_to_unit_range

if TYPE_CHECKING:  # the type is only named here: Gaussians.save / load call these modules
    from splatnet.gaussians import Gaussians

log = logging.getLogger(__name__)


@dataclass
class SplatArrays:
    """One scene's Gaussians as float64 NumPy arrays (shapes in the module docstring)."""

    means: np.ndarray
    quats: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    sh: np.ndarray

    @property
    def count(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return int(round(np.sqrt(self.sh.shape[1]))) - 1

    def take(self, index: np.ndarray) -> SplatArrays:
        return SplatArrays(self.means[index], self.quats[index], self.scales[index],
                           self.opacities[index], self.sh[index])

    def tensors(self) -> dict[str, torch.Tensor]:
        """float32 tensors by field name, as :class:`~splatnet.Gaussians` takes them."""

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

        return {"means": t(self.means), "quats": t(self.quats), "scales": t(self.scales),
                "opacities": t(self.opacities), "sh": t(self.sh)}


def export_arrays(g: Gaussians, what: str, *, clamp_colors: bool = True) -> tuple[SplatArrays, int]:
    """``g`` (one scene) prepared for a writer: non-finite rows and zero quaternions dropped,
    quaternions normalised, and with ``clamp_colors`` every DC colour brought into [0, 1] as the
    PLY writer does (:mod:`splatnet.io.colours`). Returns the arrays and how many were dropped
    (logged as a warning naming ``what``, the format)."""
    if g.batch_shape:
        raise ValidationError(f"{what} export needs one scene; these Gaussians have batch shape "
                              f"{g.batch_shape}")
    if g.is_dynamic:
        log.warning("%s export: velocities are not stored (the format has no field for them); "
                    "means are written at each Gaussian's own time", what)
    with torch.no_grad():
        sh = g.sh.detach().to("cpu", torch.float64)
        o = g.opacities.detach().to("cpu", torch.float64)
        if clamp_colors:
            sh, o = fit_colours_to_unit_range(sh, o)
        a = SplatArrays(g.means.detach().to("cpu", torch.float64).numpy(),
                        g.quats.detach().to("cpu", torch.float64).numpy(),
                        g.scales.detach().to("cpu", torch.float64).numpy(),
                        o.clamp(0.0, 1.0).numpy(), sh.numpy())
    norm = np.linalg.norm(a.quats, axis=1)
    keep = (np.isfinite(a.means).all(1) & np.isfinite(a.quats).all(1) & (norm > 0)
            & np.isfinite(a.scales).all(1) & (a.scales > 0).all(1) & np.isfinite(a.opacities)
            & np.isfinite(a.sh).all((1, 2)))
    dropped = int((~keep).sum())
    if dropped:
        log.warning("%s export: dropped %d non-finite Gaussian(s) of %d", what, dropped, a.count)
        a, norm = a.take(keep), norm[keep]
    a.quats = a.quats / norm[:, None]
    return a, dropped


def read_file_bytes(path: str | os.PathLike, what: str, limit: int) -> tuple[Path, bytes]:
    """The bytes of ``path`` (a ``what`` file) after the checks every reader makes: it exists, is
    a file, and holds at most ``limit`` bytes."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise FormatError(f"{path}: is a directory, not a {what} file")
    size = path.stat().st_size
    if size > limit:
        raise FormatError(f"{path}: {size} bytes, more than the {limit >> 20} MiB a {what} file "
                          "may hold here")
    return path, path.read_bytes()


def check_values(path: Path, a: SplatArrays) -> SplatArrays:
    """A reader's decoded arrays must be finite with positive scales and non-zero quaternions."""
    bad = ~(np.isfinite(a.means).all(1) & np.isfinite(a.quats).all(1) & np.isfinite(a.scales).all(1)
            & np.isfinite(a.opacities) & np.isfinite(a.sh).all((1, 2)))
    if bad.any():
        raise FormatError(f"{path}: {int(bad.sum())} Gaussian(s) with non-finite values")
    if a.count and not (a.scales > 0).all():
        raise FormatError(f"{path}: {int((~(a.scales > 0).all(1)).sum())} Gaussian(s) with a scale "
                          "that is not positive")
    if a.count and (np.linalg.norm(a.quats, axis=1) == 0).any():
        raise FormatError(f"{path}: {int((np.linalg.norm(a.quats, axis=1) == 0).sum())} "
                          "Gaussian(s) with a zero rotation quaternion")
    if a.count and ((a.opacities < 0) | (a.opacities > 1)).any():
        raise FormatError(f"{path}: {int(((a.opacities < 0) | (a.opacities > 1)).sum())} "
                          "opacities outside [0, 1]")
    return a


def sh_band_orders(degree: int) -> np.ndarray:
    """The order ``m`` of each SH coefficient ``[K]`` of degree 0..``degree`` in the 3DGS layout
    (band ``l`` holds ``m = -l..l``, in that order)."""
    return np.array([m for band in range(degree + 1) for m in range(-band, band + 1)])


def rotate_z_180(a: SplatArrays) -> SplatArrays:
    """The Gaussians turned by 180° about the z axis, ``(x, y, z) -> (-x, -y, z)``, exactly (sign
    flips only; the map is its own inverse).

    The rotation ``R`` becomes ``F R F`` with ``F = diag(-1, -1, 1)`` (quaternion ``(w, -x, -y,
    z)``): the covariance ``F R S² Rᵀ F`` is the turned one because ``F S² F = S²``. A real SH
    coefficient of order ``m`` (``∝ cos mφ`` or ``sin |m|φ``) changes sign by ``(-1)^m``.
    """
    sign = np.where(sh_band_orders(a.sh_degree) % 2 == 0, 1.0, -1.0)
    return SplatArrays(a.means * np.array([-1.0, -1.0, 1.0]), a.quats * np.array([1.0, -1.0, -1.0, 1.0]),
                       a.scales.copy(), a.opacities.copy(), a.sh * sign[None, :, None])


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` of w-x-y-z quaternions ``[..., 4]`` (normalised here)."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
                    axis=-1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """The w-x-y-z unit quaternion (w ≥ 0) of one rotation matrix ``[3, 3]``: the eigenvector of
    the largest eigenvalue of Bar-Itzhack's symmetric 4×4 matrix (robust for any rotation)."""
    (a, b, c), (d, e, f), (g, h, i) = r
    k = np.array([[a - e - i, d + b, g + c, h - f],
                  [d + b, e - a - i, h + f, c - g],
                  [g + c, h + f, i - a - e, d - b],
                  [h - f, c - g, d - b, a + e + i]]) / 3.0
    x, y, z, w = np.linalg.eigh(k)[1][:, -1]
    q = np.array([w, x, y, z])
    return -q if q[0] < 0 else q


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of w-x-y-z quaternions ``[..., 4]``."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw],
                    axis=-1)
