"""PlayCanvas's compressed PLY (``.compressed.ply``; SuperSplat, splat-transform and gsplat's
``ply_compressed`` export write it), written from the decoder's description in PlayCanvas's engine
and splat-transform.

A binary little-endian PLY with three elements:

- ``chunk`` (one row per 256 Gaussians, in file order): float32 ``min_x min_y min_z max_x max_y
  max_z``, ``min_scale_x .. max_scale_z`` (log-scales) and, in current files, ``min_r min_g min_b
  max_r max_g max_b`` (DC colours ``0.5 + SH_C0 · f_dc``); older files have no colour bounds and
  store colours in [0, 1].
- ``vertex`` (one row per Gaussian): uint32 ``packed_position`` and ``packed_scale`` (11, 10 and
  11 bits of x, y, z from the top bit down, each a fraction of its chunk's range),
  ``packed_rotation`` (the index of the quaternion's largest component, w-x-y-z order, in the top
  2 bits, then the other three in order as 10-bit fractions of [-1/√2, 1/√2], the quaternion
  negated so the largest is positive) and ``packed_color`` (r, g, b as 8-bit fractions of the
  chunk's colour range, then the opacity, 8 bits).
- ``sh`` (optional, one row per Gaussian): uint8 ``f_rest_0 ..`` in the PLY's channel-major order,
  ``byte = trunc(256 · (x / 8 + 0.5))``, read as ``8 · ((byte + 0.5) / 256 − 0.5)`` (0 and 255 as
  −4 and 4).

The writer puts Gaussians in Morton (Z-curve) order of their means so each chunk's box is tight,
so a file's order is not its source's. Round-trip errors (``QUANTISATION``; a chunk's range is
``max − min`` of its Gaussians): position ≤ range / 4094 (x, z) and range / 2046 (y); log-scale
likewise within [−20, 20] (clamped); DC colour ≤ colour range / 510; opacity ≤ 1/510; quaternion
components ≤ √2 / 2046 (stored ones); SH ≤ 1/32 within [−4, 4] (clamped). Axes: the PLY's, like
splatnet's PLY.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from splatnet.errors import FormatError
from splatnet.io._splats import SplatArrays, check_values, export_arrays
from splatnet.io.atomic import atomic_write
from splatnet.io.ply import _read_header
from splatnet.sh import SH_C0

if TYPE_CHECKING:
    from splatnet.gaussians import Gaussians

log = logging.getLogger(__name__)

CHUNK = 256
POSITION_PROPS = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z"]
SCALE_PROPS = ["min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z"]
COLOUR_PROPS = ["min_r", "min_g", "min_b", "max_r", "max_g", "max_b"]
VERTEX_PROPS = ["packed_position", "packed_rotation", "packed_scale", "packed_color"]
LOG_SCALE_LIMIT = 20.0
SH_LIMIT = 4.0
_ROT_HALF = np.sqrt(0.5)
_REST = {0: 0, 9: 1, 24: 2, 45: 3}  # f_rest count -> SH degree
#: Worst-case round-trip errors, as multiples of the chunk's range where they depend on it.
QUANTISATION = {
    "position_x_z_per_range": 1 / 4094, "position_y_per_range": 1 / 2046,
    "log_scale_x_z_per_range": 1 / 4094, "log_scale_y_per_range": 1 / 2046,
    "colour_per_range": 1 / 510, "opacity": 1 / 510, "rotation_component": np.sqrt(2) / 2046,
    "sh": 1 / 32,
}
_TYPES = {"float": "<f4", "float32": "<f4", "uint": "<u4", "uint32": "<u4", "uchar": "u1",
          "uint8": "u1"}


def is_compressed_ply(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a PLY whose elements are PlayCanvas's ``chunk`` and ``vertex`` with
    packed properties (read from the header only; False for anything else)."""
    try:
        header = _read_header(Path(path))
    except (FormatError, OSError):
        return False
    names = [e[0] for e in header.elements]
    return "chunk" in names and any(p == "packed_position" for e in header.elements
                                    for p, _ in e[2])


# ------------------------------------------------------------------------------------ writing
def _morton_order(means: np.ndarray) -> np.ndarray:
    """Indices sorting ``means`` along a Z-order curve (10 bits an axis over their box)."""
    if len(means) == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = means.min(0), means.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    cells = np.clip(np.floor((means - lo) / span * 1023.0 + 0.5), 0, 1023).astype(np.uint64)
    code = np.zeros(len(means), dtype=np.uint64)
    for bit in range(10):
        for axis in range(3):
            code |= ((cells[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return np.argsort(code, kind="stable")


def _unorm(t: np.ndarray, bits: int) -> np.ndarray:
    top = (1 << bits) - 1
    return np.clip(np.floor(t * top + 0.5), 0, top).astype(np.uint32)


def _fractions(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    span = hi - lo
    return np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.0)


def _pack_111011(t: np.ndarray) -> np.ndarray:
    return (_unorm(t[:, 0], 11) << np.uint32(21)) | (_unorm(t[:, 1], 10) << np.uint32(11)) \
        | _unorm(t[:, 2], 11)


def _pack_rotations(q: np.ndarray) -> np.ndarray:
    n = len(q)
    largest = np.abs(q).argmax(axis=1)
    q = np.where(q[np.arange(n), largest][:, None] < 0, -q, q)
    out = largest.astype(np.uint32)
    for i in range(4):
        keep = largest != i
        out = np.where(keep, (out << np.uint32(10)) | _unorm(q[:, i] * _ROT_HALF + 0.5, 10), out)
    return out


def encode_compressed_ply(a: SplatArrays) -> bytes:
    """The compressed-PLY bytes of prepared arrays, Gaussians in Morton order."""
    a = a.take(_morton_order(a.means))
    n, degree = a.count, a.sh_degree
    chunks = -(-n // CHUNK)
    log_s = np.log(a.scales)
    colour = 0.5 + SH_C0 * a.sh[:, 0, :]
    clamped = int((np.abs(log_s) > LOG_SCALE_LIMIT).any(1).sum())
    sh_clamped = int((np.abs(a.sh[:, 1:]) > SH_LIMIT).any((1, 2)).sum())
    if clamped or sh_clamped:
        log.warning("compressed PLY export: clamped %d log-scale(s) to ±%g and %d SH set(s) to "
                    "±%g", clamped, LOG_SCALE_LIMIT, sh_clamped, SH_LIMIT)
    log_s = np.clip(log_s, -LOG_SCALE_LIMIT, LOG_SCALE_LIMIT)
    bounds = np.zeros((chunks, 18), dtype="<f4")
    vertex = np.zeros((n, 4), dtype="<u4")
    for c in range(chunks):
        rows = slice(c * CHUNK, min(n, (c + 1) * CHUNK))
        parts = []
        for x in (a.means[rows], log_s[rows], colour[rows]):
            # The stored float32 bounds are what a reader interpolates between.
            lo, hi = x.min(0).astype(np.float32), x.max(0).astype(np.float32)
            parts.append((lo, hi))
        bounds[c] = np.concatenate([np.concatenate(p) for p in parts])
        (plo, phi), (slo, shi), (clo, chi) = parts
        vertex[rows, 0] = _pack_111011(_fractions(a.means[rows], plo, phi))
        vertex[rows, 1] = _pack_rotations(a.quats[rows])
        vertex[rows, 2] = _pack_111011(_fractions(log_s[rows], slo, shi))
        rgb = _fractions(colour[rows], clo, chi)
        vertex[rows, 3] = ((_unorm(rgb[:, 0], 8) << np.uint32(24)) | (_unorm(rgb[:, 1], 8) << np.uint32(16))
                           | (_unorm(rgb[:, 2], 8) << np.uint32(8)) | _unorm(a.opacities[rows], 8))
    rest = a.sh[:, 1:, :].transpose(0, 2, 1).reshape(n, 3 * (a.sh.shape[1] - 1))  # as PLY f_rest
    sh_bytes = np.clip(np.trunc((rest / 8.0 + 0.5) * 256.0), 0, 255).astype(np.uint8)
    lines = ["ply", "format binary_little_endian 1.0", f"element chunk {chunks}"]
    lines += [f"property float {p}" for p in POSITION_PROPS + SCALE_PROPS + COLOUR_PROPS]
    lines += [f"element vertex {n}"] + [f"property uint {p}" for p in VERTEX_PROPS]
    if degree:
        lines += [f"element sh {n}"] + [f"property uchar f_rest_{i}" for i in range(rest.shape[1])]
    lines.append("end_header")
    header = ("\n".join(lines) + "\n").encode("ascii")
    return header + bounds.tobytes() + vertex.tobytes() + (sh_bytes.tobytes() if degree else b"")


def write_compressed_ply(g: Gaussians, path: str | os.PathLike, *, clamp_colors: bool = True) -> int:
    """Write ``g`` (one scene) as a compressed PLY atomically; returns how many non-finite
    Gaussians were dropped. ``clamp_colors`` as for PLY."""
    a, dropped = export_arrays(g, "compressed PLY", clamp_colors=clamp_colors)
    data = encode_compressed_ply(a)
    with atomic_write(path, "wb") as f:
        f.write(data)
    return dropped


# ------------------------------------------------------------------------------------ reading
def _element(path, header, name: str, required: list[str] | None, kind: str):
    for element, count, props in header.elements:
        if element == name:
            names = [p for p, _ in props]
            if required is not None:
                missing = [p for p in required if p not in names]
                if missing:
                    raise FormatError(f"{path}: compressed PLY element '{name}' lacks {missing}")
            bad = [f"{p} ({t})" for p, t in props if _TYPES.get(t) != kind]
            if bad:
                raise FormatError(f"{path}: compressed PLY element '{name}' must hold "
                                  f"{ {'<f4': 'float', '<u4': 'uint', 'u1': 'uchar'}[kind]} "
                                  f"properties, got {', '.join(bad)}")
            dupes = sorted({p for p in names if names.count(p) > 1})
            if dupes:
                raise FormatError(f"{path}: duplicate properties {dupes} in element '{name}'")
            return count, names
    return None


def read_compressed_ply(path: str | os.PathLike) -> dict:
    """Read a PlayCanvas compressed PLY → float32 ``means, quats, scales, opacities, sh``
    (activated), in file order. Anything else (a plain PLY, other element layouts, a body that is
    not exactly the bytes the header promises, a chunk count that does not cover the Gaussians,
    non-finite bounds) is one :class:`FormatError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise FormatError(f"{path}: is a directory, not a PLY file")
    header = _read_header(path)
    if header.format != "binary_little_endian":
        raise FormatError(f"{path}: a compressed PLY must be binary_little_endian, not "
                          f"{header.format}")
    names = [e[0] for e in header.elements]
    if names not in (["chunk", "vertex"], ["chunk", "vertex", "sh"]):
        raise FormatError(f"{path}: not a compressed PLY: expected the elements chunk, vertex "
                          f"[, sh], found {names}")
    chunk = _element(path, header, "chunk", POSITION_PROPS + SCALE_PROPS, "<f4")
    vertex = _element(path, header, "vertex", VERTEX_PROPS, "<u4")
    sh = _element(path, header, "sh", None, "u1")
    (chunks, chunk_names), (n, vertex_names) = chunk, vertex
    unknown = [p for p in chunk_names if p not in POSITION_PROPS + SCALE_PROPS + COLOUR_PROPS]
    has_colour = any(p in chunk_names for p in COLOUR_PROPS)
    if unknown or (has_colour and not all(p in chunk_names for p in COLOUR_PROPS)):
        raise FormatError(f"{path}: compressed PLY chunk properties {chunk_names} are not the "
                          "position, scale [and colour] bounds")
    if set(vertex_names) != set(VERTEX_PROPS):
        raise FormatError(f"{path}: compressed PLY vertex properties {vertex_names}, expected "
                          f"{VERTEX_PROPS}")
    rest_names = [] if sh is None else sh[1]
    if sh is not None and (sh[0] != n or rest_names != [f"f_rest_{i}" for i in range(len(rest_names))]
                           or len(rest_names) not in _REST):
        raise FormatError(f"{path}: compressed PLY sh element must hold f_rest_0.. (9, 24 or 45 "
                          f"of them) for each of the {n} Gaussians; it has {len(rest_names)} for "
                          f"{sh[0]}")
    if chunks != -(-n // CHUNK):
        raise FormatError(f"{path}: {chunks} chunk(s) for {n} Gaussians; a compressed PLY has one "
                          f"per {CHUNK} (expected {-(-n // CHUNK)})")
    sizes = [chunks * 4 * len(chunk_names), n * 16, n * len(rest_names)]
    body = path.stat().st_size - header.size
    if body != sum(sizes):
        what = "truncated compressed PLY" if body < sum(sizes) else \
            "compressed PLY body longer than the header says"
        raise FormatError(f"{path}: {what}: the header promises {sum(sizes)} bytes after it, "
                          f"the file holds {body}")
    with open(path, "rb") as f:
        f.seek(header.size)
        raw = f.read()
    b = np.frombuffer(raw, "<f4", chunks * len(chunk_names)).reshape(chunks, len(chunk_names))
    b = b.astype(np.float64)
    v = np.frombuffer(raw, "<u4", n * 4, sizes[0]).reshape(n, 4)
    if not np.isfinite(b).all():
        raise FormatError(f"{path}: non-finite chunk bounds")
    col = {p: b[:, i] for i, p in enumerate(chunk_names)}
    which = np.arange(n) // CHUNK

    def bounded(props: list[str], t: np.ndarray) -> np.ndarray:
        lo = np.stack([col[p] for p in props[:3]], 1)[which]
        hi = np.stack([col[p] for p in props[3:]], 1)[which]
        return lo * (1 - t) + hi * t

    def unpack_111011(word: np.ndarray) -> np.ndarray:
        return np.stack([(word >> 21) / 2047.0, ((word >> 11) & 1023) / 1023.0,
                         (word & 2047) / 2047.0], 1)

    word = {p: v[:, vertex_names.index(p)].astype(np.int64) for p in VERTEX_PROPS}
    means = bounded(POSITION_PROPS, unpack_111011(word["packed_position"]))
    log_s = bounded(SCALE_PROPS, unpack_111011(word["packed_scale"]))
    c = word["packed_color"]
    rgb = np.stack([(c >> 24) & 255, (c >> 16) & 255, (c >> 8) & 255], 1) / 255.0
    if has_colour:
        rgb = bounded(COLOUR_PROPS, rgb)
    r = word["packed_rotation"]
    largest = r >> 30
    others = np.stack([((r >> s) & 1023) / 1023.0 for s in (20, 10, 0)], 1)
    others = (others - 0.5) * np.sqrt(2.0)
    quats = np.zeros((n, 4))
    slot = 0 * largest
    for i in range(4):
        here = largest != i
        quats[:, i] = np.where(here, others[np.arange(n), np.minimum(slot, 2)], 0.0)
        slot = slot + here
    quats[np.arange(n), largest] = np.sqrt(np.maximum(0.0, 1.0 - (quats ** 2).sum(1)))
    degree = _REST[len(rest_names)]
    k = (degree + 1) ** 2
    shs = np.zeros((n, k, 3))
    shs[:, 0, :] = (rgb - 0.5) / SH_C0
    if degree:
        s = np.frombuffer(raw, np.uint8, n * len(rest_names), sizes[0] + sizes[1])
        s = s.reshape(n, len(rest_names)).astype(np.float64)
        unit = np.where(s == 0, 0.0, np.where(s == 255, 1.0, (s + 0.5) / 256.0))
        shs[:, 1:, :] = ((unit - 0.5) * 8.0).reshape(n, 3, k - 1).transpose(0, 2, 1)
    with np.errstate(over="ignore"):
        scales = np.exp(log_s)
    a = SplatArrays(means, quats, scales, (c & 255) / 255.0, shs)
    return check_values(path, a).tensors()
