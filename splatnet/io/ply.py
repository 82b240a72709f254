"""3DGS PLY: the file format standard viewers read (layout in CONVENTIONS.md).

Binary little-endian float32, one ``vertex`` element, properties
``x y z nx ny nz f_dc_0..2 f_rest_0.. opacity scale_0..2 rot_0..3``, stored pre-activation
(``logit`` opacity, ``log`` scale, w-x-y-z rotation), ``f_rest`` channel-major, zero normals.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import FormatError, ValidationError
from ..gaussians import Gaussians
from ..sh import num_sh_bases
from .atomic import atomic_write

log = logging.getLogger(__name__)

_REST_COUNTS = {0: 0, 9: 1, 24: 2, 45: 3}  # number of f_rest_* properties -> SH degree
# Opacities of exactly 0 or 1 have infinite logits; store the nearest finite float32 logit.
_OPACITY_EPS = 1e-7


def property_names(sh_degree: int, normals: bool = True) -> list[str]:
    """The vertex properties, in file order, for a given SH degree."""
    k = num_sh_bases(sh_degree)
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals else [])
    names += [f"f_dc_{i}" for i in range(3)]
    names += [f"f_rest_{i}" for i in range(3 * (k - 1))]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return names


def ply_header(num: int, sh_degree: int) -> bytes:
    """The exact header splatnet writes (no comments; one property line each, float)."""
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {num}"]
    lines += [f"property float {n}" for n in property_names(sh_degree)]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")


def gaussians_to_records(g: Gaussians) -> tuple[np.ndarray, int]:
    """Pre-activation float32 records ``[N, P]`` in file order, and how many rows were dropped."""
    if g.batch_shape:
        raise ValidationError(f"PLY export needs one scene; these Gaussians have batch shape "
                              f"{g.batch_shape} (select one, e.g. g_batch[0] via Gaussians(...))")
    if g.is_dynamic:
        log.warning("PLY export: velocities are not stored (3DGS viewers have no field for them); "
                    "means are written at each Gaussian's own time")
    with torch.no_grad():
        means = g.means.detach().to("cpu", torch.float64)
        n, k = means.shape[0], g.sh.shape[-2]
        sh = g.sh.detach().to("cpu", torch.float64)  # [N, K, 3]
        f_dc = sh[:, 0, :]
        f_rest = sh[:, 1:, :].transpose(1, 2).reshape(n, 3 * (k - 1))  # channel-major
        o = g.opacities.detach().to("cpu", torch.float64).clamp(_OPACITY_EPS, 1 - _OPACITY_EPS)
        opacity = torch.log(o) - torch.log1p(-o)
        scales = torch.log(g.scales.detach().to("cpu", torch.float64))
        quats = g.quats.detach().to("cpu", torch.float64)
        cols = [means, torch.zeros(n, 3, dtype=torch.float64), f_dc, f_rest, opacity[:, None],
                scales, quats]
        rec = torch.cat(cols, dim=1).to(torch.float32)
        finite = torch.isfinite(rec).all(dim=1) & (g.quats.detach().cpu().norm(dim=-1) > 0)
    dropped = int((~finite).sum())
    return rec[finite].numpy(), dropped


def save_ply(g: Gaussians, path: str | os.PathLike) -> int:
    """Write ``g`` as a 3DGS PLY atomically; non-finite Gaussians are dropped and counted.

    Returns the number of dropped Gaussians (also logged as a warning when non-zero).
    """
    rec, dropped = gaussians_to_records(g)
    if dropped:
        log.warning("PLY export: dropped %d non-finite Gaussian(s) of %d", dropped, g.num_gaussians)
    body = np.ascontiguousarray(rec, dtype="<f4").tobytes()
    with atomic_write(path, "wb") as f:
        f.write(ply_header(rec.shape[0], g.sh_degree))
        f.write(body)
    return dropped


def load_ply(path: str | os.PathLike) -> Gaussians:
    """Read a 3DGS PLY written by splatnet, the reference 3DGS code, gsplat or compatible tools.

    Accepts files with or without ``nx ny nz``, SH degree 0-3, in any binary or ASCII PLY
    encoding that plyfile reads; properties must be float32. Raises :class:`FormatError` naming the
    file and the problem for anything else.
    """
    from plyfile import PlyData, PlyParseError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise FormatError(f"{path}: is a directory, not a PLY file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"ply\n" and magic[:3] != b"ply":
        raise FormatError(f"{path}: not a PLY file (it does not start with 'ply')")
    try:
        ply = PlyData.read(str(path))
    except PlyParseError as exc:
        raise FormatError(f"{path}: malformed or truncated PLY ({exc})") from None
    except (ValueError, EOFError, IndexError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: malformed or truncated PLY ({exc})") from None
    names = [e.name for e in ply.elements]
    if names != ["vertex"]:
        raise FormatError(f"{path}: expected exactly one 'vertex' element, found {names}")
    vertex = ply["vertex"]
    props = {p.name: p for p in vertex.properties}
    mistyped = [f"{p.name} ({p.val_dtype})" for p in vertex.properties
                if np.dtype(p.val_dtype).kind != "f" or np.dtype(p.val_dtype).itemsize != 4
                or getattr(p, "len_dtype", None) is not None]
    if mistyped:
        raise FormatError(f"{path}: properties must be float32, got {', '.join(mistyped)}")
    n_rest = sum(1 for n in props if n.startswith("f_rest_"))
    if n_rest not in _REST_COUNTS:
        raise FormatError(f"{path}: {n_rest} f_rest_* properties is not an SH degree 0-3 set "
                          "(expected 0, 9, 24 or 45)")
    degree = _REST_COUNTS[n_rest]
    required = property_names(degree, normals=False)
    missing = [n for n in required if n not in props]
    if missing:
        raise FormatError(f"{path}: missing vertex properties {missing}")
    allowed = set(property_names(degree, normals=True))
    unknown = [n for n in props if n not in allowed]
    if unknown:
        raise FormatError(f"{path}: unexpected vertex properties {unknown} (not a 3DGS PLY?)")
    data = vertex.data
    n = len(data)

    def cols(names: list[str]) -> np.ndarray:
        if not names:
            return np.zeros((n, 0))
        return np.stack([np.asarray(data[c], dtype=np.float64) for c in names], axis=1)

    means = cols(["x", "y", "z"])
    f_dc = cols([f"f_dc_{i}" for i in range(3)])
    k = num_sh_bases(degree)
    f_rest = cols([f"f_rest_{i}" for i in range(3 * (k - 1))]).reshape(n, 3, k - 1)
    sh = np.concatenate([f_dc[:, None, :], f_rest.transpose(0, 2, 1)], axis=1)  # [N, K, 3]
    opacity_logit = cols(["opacity"])[:, 0]
    log_scales = cols(["scale_0", "scale_1", "scale_2"])
    quats = cols(["rot_0", "rot_1", "rot_2", "rot_3"])
    bad = ~(np.isfinite(means).all(1) & np.isfinite(sh).all((1, 2)) & np.isfinite(opacity_logit)
            & np.isfinite(log_scales).all(1) & np.isfinite(quats).all(1))
    if bad.any():
        raise FormatError(f"{path}: {int(bad.sum())} Gaussian(s) with non-finite values")
    if n and (np.linalg.norm(quats, axis=1) == 0).any():
        raise FormatError(f"{path}: {int((np.linalg.norm(quats, axis=1) == 0).sum())} Gaussian(s) "
                          "with a zero rotation quaternion")

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32)

    scales = np.exp(log_scales)
    if n and not (scales > 0).all():
        raise FormatError(f"{path}: scale values underflow to zero after exp (log-scale too small)")
    opac = 1.0 / (1.0 + np.exp(-opacity_logit))
    try:
        return Gaussians(t(means), t(quats), t(scales), t(opac), t(sh))
    except ValidationError as exc:
        raise FormatError(f"{path}: {exc}") from None
