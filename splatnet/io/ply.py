"""3DGS PLY: the file format standard viewers read (layout in docs/conventions.md).

Binary little-endian float32, one ``vertex`` element, properties
``x y z nx ny nz f_dc_0..2 f_rest_0.. opacity scale_0..2 rot_0..3``, stored pre-activation
(``logit`` opacity, ``log`` scale, w-x-y-z rotation), ``f_rest`` channel-major, zero normals.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from splatnet.errors import FormatError, ValidationError
from splatnet.io.atomic import atomic_write
from splatnet.io.colours import fit_colours_to_unit_range
from splatnet.sh import num_sh_bases

if TYPE_CHECKING:  # the type is only named here: Gaussians.save_ply / load_ply call this module
    from splatnet.gaussians import Gaussians

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


def gaussians_to_records(g: Gaussians, clamp_colors: bool = True) -> tuple[np.ndarray, int]:
    """Pre-activation float32 records ``[N, P]`` in file order, and how many rows were dropped.

    With ``clamp_colors`` every DC colour ``0.5 + SH_C0 * f_dc`` is brought into [0, 1] as
    :func:`~splatnet.io.colours.fit_colours_to_unit_range` does (over-bright colour moved into
    the opacity, so the premultiplied colour is unchanged).
    """
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
        o = g.opacities.detach().to("cpu", torch.float64)
        if clamp_colors:
            sh, o = fit_colours_to_unit_range(sh, o)
        f_dc = sh[:, 0, :]
        f_rest = sh[:, 1:, :].transpose(1, 2).reshape(n, 3 * (k - 1))  # channel-major
        o = o.clamp(_OPACITY_EPS, 1 - _OPACITY_EPS)
        opacity = torch.log(o) - torch.log1p(-o)
        scales = torch.log(g.scales.detach().to("cpu", torch.float64))
        quats = g.quats.detach().to("cpu", torch.float64)
        cols = [means, torch.zeros(n, 3, dtype=torch.float64), f_dc, f_rest, opacity[:, None],
                scales, quats]
        rec = torch.cat(cols, dim=1).to(torch.float32)
        finite = torch.isfinite(rec).all(dim=1) & (g.quats.detach().cpu().norm(dim=-1) > 0)
    dropped = int((~finite).sum())
    return rec[finite].numpy(), dropped


def save_ply(g: Gaussians, path: str | os.PathLike, *, clamp_colors: bool = True) -> int:
    """Write ``g`` as a 3DGS PLY atomically; non-finite Gaussians are dropped and counted.

    ``clamp_colors`` (default) brings each DC colour ``0.5 + SH_C0 * f_dc`` into [0, 1], what
    viewers that quantise splat colours to 8 bits can show, moving over-bright colour into the
    opacity (see :mod:`splatnet.io.colours`); pass ``False`` to store SH and opacities exactly
    (a lossless round trip through :func:`load_ply`).

    Returns the number of dropped Gaussians (also logged as a warning when non-zero).
    """
    rec, dropped = gaussians_to_records(g, clamp_colors)
    if dropped:
        log.warning("PLY export: dropped %d non-finite Gaussian(s) of %d", dropped, g.num_gaussians)
    body = np.ascontiguousarray(rec, dtype="<f4").tobytes()
    with atomic_write(path, "wb") as f:
        f.write(ply_header(rec.shape[0], g.sh_degree))
        f.write(body)
    return dropped


# A 3DGS header is under 2 KiB (62 property lines at degree 3); tools add a few comment lines.
# 64 KiB is 30 times that, and plyfile, which parses headers one character at a time, gets
# through it in about 20 ms: a header that has not ended by then (a 50 MB comment line once took
# 37 s and 1.1 GB) is refused before plyfile sees it.
HEADER_LIMIT = 64 * 1024
_FLOAT32_NAMES = ("float", "float32")
_FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")
# exp() of a log-scale above this overflows float32 (the dtype of Gaussians read from a PLY).
_LOG_FLOAT32_MAX = float(np.log(np.finfo(np.float32).max))


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


class _Header:
    """What the pre-checks need from a PLY header: its size, format and elements."""

    def __init__(self, size: int, fmt: str, elements: list[tuple[str, int, list[tuple[str, str]]]]):
        self.size, self.format, self.elements = size, fmt, elements


def _read_header(path: Path) -> _Header:
    """Read and parse the header within :data:`HEADER_LIMIT` bytes.

    Only what the body checks need; plyfile parses it again (now bounded) when it reads the body.
    Property types are kept as written (``float``, ``double``, ``list uchar int``).
    """
    with open(path, "rb") as f:
        head = f.read(HEADER_LIMIT)
    if head[:3] != b"ply":
        raise FormatError(f"{path}: not a PLY file (it does not start with 'ply')")
    nl = b"\r\n" if head[3:5] == b"\r\n" else head[3:4]
    if nl not in (b"\n", b"\r", b"\r\n"):
        raise FormatError(f"{path}: malformed PLY header (unexpected characters after 'ply')")
    end = head.find(nl + b"end_header" + nl)
    if end < 0:
        if len(head) == HEADER_LIMIT:
            raise FormatError(f"{path}: no end_header line in the first 64 KiB; a 3DGS PLY header "
                              "is under 2 KiB (a huge comment line, or not a 3DGS PLY file)")
        raise FormatError(f"{path}: malformed or truncated PLY header (no end_header line)")
    size = end + 2 * len(nl) + len(b"end_header")
    try:
        lines = head[: end].decode("ascii").split(nl.decode())[1:]
    except UnicodeDecodeError:
        raise FormatError(f"{path}: malformed PLY header (non-ASCII bytes)") from None
    fmt = None
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for number, line in enumerate(lines, start=2):
        fields = line.split()
        if not fields or fields[0] in ("comment", "obj_info"):
            continue
        bad = f"{path}: malformed PLY header, line {number}"
        if fields[0] == "format":
            if len(fields) != 3 or fields[1] not in _FORMATS:
                raise FormatError(f"{bad}: expected 'format ascii|binary_little_endian|"
                                  "binary_big_endian 1.0'")
            fmt = fields[1]
        elif fields[0] == "element":
            if len(fields) != 3:
                raise FormatError(f"{bad}: expected 'element NAME COUNT'")
            try:
                count = int(fields[2])
            except ValueError:
                raise FormatError(f"{bad}: element count {fields[2]!r} is not an integer") from None
            if count < 0:
                raise FormatError(f"{path}: negative vertex count {count} in the header"
                                  if fields[1] == "vertex" else
                                  f"{bad}: negative element count {count}")
            elements.append((fields[1], count, []))
        elif fields[0] == "property" and elements and len(fields) >= 3:
            elements[-1][2].append((fields[-1], " ".join(fields[1:-1])))
        else:
            raise FormatError(f"{bad}: unexpected {line.strip()[:40]!r}")
    if fmt is None:
        raise FormatError(f"{path}: malformed PLY header (no format line)")
    return _Header(size, fmt, elements)


def _count_nonempty_lines(path: Path, offset: int) -> int:
    """Non-blank lines from ``offset`` to the end (CR, LF or CRLF), read in 1 MiB chunks."""
    count, partial = 0, b""
    with open(path, "rb") as f:
        f.seek(offset)
        while chunk := f.read(1 << 20):
            parts = (partial + chunk).replace(b"\r", b"\n").split(b"\n")
            partial = parts.pop()
            count += sum(1 for p in parts if p.strip())
    return count + (1 if partial.strip() else 0)


def _check_body_size(path: Path, header: _Header, props: list[str]) -> None:
    """The body must hold exactly the vertices the header promises: fewer is a truncated file,
    more is a malformed one (its extra data would otherwise be silently ignored)."""
    count = header.elements[0][1]
    promised = _plural(count, "vertex", "vertices")
    if header.format == "ascii":
        lines = _count_nonempty_lines(path, header.size)
        held = _plural(lines, "non-empty line", "non-empty lines")
        if lines < count:
            raise FormatError(f"{path}: truncated PLY: the header promises {promised}, the body "
                              f"holds {held}")
        if lines > count:
            raise FormatError(f"{path}: PLY body longer than the header says: the header promises "
                              f"{promised}, the body holds {held}")
        return
    record = 4 * len(props)
    body = path.stat().st_size - header.size
    want = count * record
    if body == want:
        return
    rest = body % record
    held = (f"{body} bytes ({_plural(body // record, 'vertex', 'vertices')}"
            + (f" and {_plural(rest, 'extra byte', 'extra bytes')})" if rest else ")"))
    if body < want:
        raise FormatError(f"{path}: truncated PLY: the header promises {promised} ({want} bytes), "
                          f"the body holds {held}")
    raise FormatError(f"{path}: PLY body longer than the header says: the header promises "
                      f"{promised} ({want} bytes), the body holds {held}")


def read_ply(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a 3DGS PLY written by splatnet, the reference 3DGS code, gsplat or compatible tools:
    float32 ``means, quats, scales, opacities, sh`` (activated, as :class:`~splatnet.Gaussians`
    takes them; ``Gaussians.load_ply`` builds one from them).

    Accepts files with or without ``nx ny nz``, SH degree 0-3, in any binary or ASCII PLY
    encoding that plyfile reads; properties must be float32. Raises :class:`FormatError` naming the
    file and the problem for anything else: a header over :data:`HEADER_LIMIT` bytes, a body
    shorter or longer than the header promises, non-finite values, a log-scale whose ``exp``
    overflows float32 or underflows to zero. Opacity logits of any magnitude saturate to 0 or 1.
    """
    from plyfile import PlyData, PlyParseError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise FormatError(f"{path}: is a directory, not a PLY file")
    header = _read_header(path)
    names = [e[0] for e in header.elements]
    if names != ["vertex"]:
        if "chunk" in names:
            raise FormatError(f"{path}: a PlayCanvas compressed PLY (elements {names}), not a plain "
                              "3DGS PLY; read it with Gaussians.load (splatnet/io/compressed_ply.py)")
        raise FormatError(f"{path}: expected exactly one 'vertex' element, found {names}")
    declared = header.elements[0][2]
    mistyped = [f"{name} ({kind})" for name, kind in declared if kind not in _FLOAT32_NAMES]
    if mistyped:
        raise FormatError(f"{path}: properties must be float32, got {', '.join(mistyped)}")
    prop_names = [name for name, _ in declared]
    dupes = sorted({n for n in prop_names if prop_names.count(n) > 1})
    if dupes:
        raise FormatError(f"{path}: duplicate vertex properties {dupes}")
    props = set(prop_names)
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
    unknown = [n for n in prop_names if n not in allowed]
    if unknown:
        raise FormatError(f"{path}: unexpected vertex properties {unknown} (not a 3DGS PLY?)")
    _check_body_size(path, header, prop_names)
    try:
        ply = PlyData.read(str(path))
    except PlyParseError as exc:
        raise FormatError(f"{path}: malformed or truncated PLY ({exc})") from None
    except (ValueError, EOFError, IndexError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: malformed or truncated PLY ({exc})") from None
    data = ply["vertex"].data
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
    # A scale whose exp is not a finite float32 is a non-finite value (an error on reading, as
    # NaN and inf are), found before exp so that numpy has nothing to warn about.
    huge = (log_scales > _LOG_FLOAT32_MAX).any(1)
    if huge.any():
        raise FormatError(f"{path}: {int(huge.sum())} Gaussian(s) with a log-scale above "
                          f"{_LOG_FLOAT32_MAX:.2f} (largest {log_scales.max():.6g}): the scale, "
                          "its exp, overflows float32")
    with np.errstate(under="ignore"):
        scales = np.exp(log_scales).astype(np.float32)
        # Logistic sigmoid without overflow: exp of a non-positive number only underflows, so
        # logits of any magnitude saturate to exactly 0 or 1.
        e = np.exp(-np.abs(opacity_logit))
    if n and not (scales > 0).all():
        raise FormatError(f"{path}: {int((~(scales > 0).all(1)).sum())} Gaussian(s) whose scale "
                          "values underflow to zero after exp (log-scale too small)")
    opac = np.where(opacity_logit >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32)

    return {"means": t(means), "quats": t(quats), "scales": t(scales), "opacities": t(opac),
            "sh": t(sh)}
