"""glTF binary (``.glb``) with Khronos's ``KHR_gaussian_splatting`` extension, written from the
extension's README (github.com/KhronosGroup/glTF, extensions/2.0/Khronos/KHR_gaussian_splatting).

One mesh primitive of ``mode`` 0 (POINTS) whose ``extensions.KHR_gaussian_splatting`` is
``{"kernel": "ellipse", "colorSpace": "srgb_rec709_display", "projection": "perspective",
"sortingMethod": "cameraDistance"}``, with the attributes (all float32 as splatnet writes them):

- ``POSITION`` (VEC3): means, with the ``min``/``max`` glTF requires;
- ``KHR_gaussian_splatting:ROTATION`` (VEC4): unit quaternion **x, y, z, w**;
- ``KHR_gaussian_splatting:SCALE`` (VEC3): **linear** scales (standard deviations);
- ``KHR_gaussian_splatting:OPACITY`` (SCALAR): **activated** opacity in [0, 1];
- ``KHR_gaussian_splatting:SH_DEGREE_l_COEF_n`` (VEC3, r, g, b): SH coefficient ``n`` (order
  ``m = n − l``) of band ``l``; ``l = 0`` is the DC term;
- ``COLOR_0`` (VEC4 unsigned byte, normalized): the fallback point colour ``0.5 + SH_C0 · f_dc``
  and opacity, for viewers without the extension.

The SH basis is the 3DGS one (real SH with the Condon–Shortley phase, the same order), so
coefficients are stored as they are. All values are float32: a round trip is exact up to
float32 rounding.

**Axes.** glTF is +Y up, +Z forward, +X left. splatnet's PLY axes are read by viewers as x right,
y down, z forward (the 3DGS/COLMAP camera convention), so a glb is that frame turned 180° about z
(``x, y, z → −x, −y, z``), exactly as PlayCanvas's splat-transform converts a PLY, and the
reader turns it back: a file opens the same way as splatnet's PLY of the same Gaussians
(docs/conventions.md, "File axes").

Reading accepts what the extension allows: float or normalized-integer rotations, scales and
opacities, interleaved buffer views, several splat primitives (concatenated) and node transforms
(rigid with a uniform scale); it refuses external buffers, sparse accessors and required
extensions it does not know (e.g. compression), each with one :class:`FormatError`.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from typing import TYPE_CHECKING

import numpy as np
import torch

from splatnet.errors import FormatError
from splatnet.io._splats import (
    SplatArrays,
    check_values,
    export_arrays,
    matrix_to_quat,
    quat_multiply,
    quat_to_matrix,
    read_file_bytes,
    rotate_z_180,
)
from splatnet.io.atomic import atomic_write
from splatnet.sh import SH_C0, sh_rotation_matrices

if TYPE_CHECKING:
    from splatnet.gaussians import Gaussians

log = logging.getLogger(__name__)

EXTENSION = "KHR_gaussian_splatting"
PREFIX = EXTENSION + ":"
GLB_MAGIC = 0x46546C67  # "glTF"
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942
FLOAT, BYTE, UBYTE, SHORT, USHORT = 5126, 5120, 5121, 5122, 5123
ARRAY_BUFFER = 34962
MAX_FILE_BYTES = (1 << 32) - 1  # a GLB's length field is 32-bit
MAX_JSON_BYTES = 64 << 20
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_DTYPE = {FLOAT: "<f4", BYTE: "i1", UBYTE: "u1", SHORT: "<i2", USHORT: "<u2", 5125: "<u4"}
#: Component types the extension allows for each attribute (normalized where an int type).
_ALLOWED = {
    "POSITION": {(FLOAT, False)},
    PREFIX + "ROTATION": {(FLOAT, False), (BYTE, True), (SHORT, True)},
    PREFIX + "SCALE": {(FLOAT, False), (BYTE, False), (BYTE, True), (SHORT, False), (SHORT, True)},
    PREFIX + "OPACITY": {(FLOAT, False), (UBYTE, True), (USHORT, True)},
    "COLOR_0": {(FLOAT, False), (UBYTE, True), (USHORT, True)},
}


def _sh_name(band: int, n: int) -> str:
    return f"{PREFIX}SH_DEGREE_{band}_COEF_{n}"


# ------------------------------------------------------------------------------------ writing
def encode_glb(a: SplatArrays, generator: str = "splatnet") -> bytes:
    """The glb bytes of prepared arrays (:func:`~splatnet.io._splats.export_arrays`)."""
    n = a.count
    doc: dict = {"asset": {"version": "2.0", "generator": generator},
                 "extensionsUsed": [EXTENSION], "scene": 0}
    if n == 0:  # glTF accessors hold at least one element: an empty splat set has no primitive
        doc["scenes"] = [{}]
        return _glb(doc, b"")
    g = rotate_z_180(a)
    colour = np.clip(np.floor((0.5 + SH_C0 * g.sh[:, 0, :]) * 255 + 0.5), 0, 255)
    alpha = np.clip(np.floor(g.opacities * 255 + 0.5), 0, 255)
    segments = [("POSITION", g.means.astype("<f4"), "VEC3", FLOAT, False),
                ("COLOR_0", np.concatenate([colour, alpha[:, None]], 1).astype(np.uint8), "VEC4",
                 UBYTE, True),
                (PREFIX + "ROTATION", g.quats[:, [1, 2, 3, 0]].astype("<f4"), "VEC4", FLOAT, False),
                (PREFIX + "SCALE", g.scales.astype("<f4"), "VEC3", FLOAT, False),
                (PREFIX + "OPACITY", g.opacities.astype("<f4"), "SCALAR", FLOAT, False)]
    k = 0
    for band in range(a.sh_degree + 1):
        for coef in range(2 * band + 1):
            segments.append((_sh_name(band, coef), g.sh[:, k, :].astype("<f4"), "VEC3", FLOAT, False))
            k += 1
    views, accessors, attributes, blob = [], [], {}, bytearray()
    for i, (name, data, kind, ctype, normalized) in enumerate(segments):
        raw = np.ascontiguousarray(data).tobytes()
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(raw),
                      "target": ARRAY_BUFFER})
        blob += raw + bytes(-len(raw) % 4)
        acc = {"bufferView": i, "componentType": ctype, "count": n, "type": kind}
        if normalized:
            acc["normalized"] = True
        if name == "POSITION":
            acc["min"] = [float(v) for v in data.min(0)]
            acc["max"] = [float(v) for v in data.max(0)]
        accessors.append(acc)
        attributes[name] = i
    doc.update({
        "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": attributes, "mode": 0, "extensions": {EXTENSION: {
            "kernel": "ellipse", "colorSpace": "srgb_rec709_display",
            "projection": "perspective", "sortingMethod": "cameraDistance"}}}]}],
        "buffers": [{"byteLength": len(blob)}], "bufferViews": views, "accessors": accessors})
    return _glb(doc, bytes(blob))


def _glb(doc: dict, blob: bytes) -> bytes:
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<II", len(text), CHUNK_JSON) + text
    if blob:
        chunks += struct.pack("<II", len(blob), CHUNK_BIN) + blob
    return struct.pack("<III", GLB_MAGIC, 2, 12 + len(chunks)) + chunks


def write_glb(g: Gaussians, path: str | os.PathLike, *, clamp_colors: bool = True) -> int:
    """Write ``g`` (one scene) as a ``KHR_gaussian_splatting`` glb atomically; returns how many
    non-finite Gaussians were dropped. ``clamp_colors`` as for PLY."""
    from splatnet import __version__

    a, dropped = export_arrays(g, "glb", clamp_colors=clamp_colors)
    data = encode_glb(a, f"splatnet {__version__}")
    with atomic_write(path, "wb") as f:
        f.write(data)
    return dropped


# ------------------------------------------------------------------------------------ reading
def _chunks(path, data: bytes) -> tuple[dict, bytes]:
    if len(data) < 12:
        raise FormatError(f"{path}: truncated glb: {len(data)} bytes, the header alone has 12")
    magic, version, length = struct.unpack_from("<III", data)
    if magic != GLB_MAGIC:
        raise FormatError(f"{path}: not a glb file (it does not start with 'glTF')")
    if version != 2:
        raise FormatError(f"{path}: glTF binary version {version}; splatnet reads version 2")
    if length != len(data):
        what = "truncated glb" if length > len(data) else "glb file longer than its header says"
        raise FormatError(f"{path}: {what}: the header says {length} bytes, the file has {len(data)}")
    found, at = [], 12
    while at < len(data):
        if len(data) - at < 8:
            raise FormatError(f"{path}: malformed glb: {len(data) - at} stray bytes at {at}")
        size, kind = struct.unpack_from("<II", data, at)
        if size > len(data) - at - 8:
            raise FormatError(f"{path}: malformed glb: chunk {len(found)} claims {size} bytes, "
                              f"{len(data) - at - 8} are left")
        found.append((kind, data[at + 8:at + 8 + size]))
        at += 8 + size
    if not found or found[0][0] != CHUNK_JSON:
        raise FormatError(f"{path}: malformed glb: the first chunk is not JSON")
    if len(found[0][1]) > MAX_JSON_BYTES:
        raise FormatError(f"{path}: glb JSON chunk of {len(found[0][1])} bytes, more than "
                          f"{MAX_JSON_BYTES >> 20} MiB")
    try:
        doc = json.loads(found[0][1].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FormatError(f"{path}: the glb's JSON chunk is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise FormatError(f"{path}: the glb's JSON is not an object")
    blob = found[1][1] if len(found) > 1 and found[1][0] == CHUNK_BIN else b""
    return doc, blob


def _get(path, doc: dict, key: str, index: object, where: str) -> dict:
    items = doc.get(key)
    if not isinstance(index, int) or isinstance(index, bool) or not isinstance(items, list) \
            or not 0 <= index < len(items) or not isinstance(items[index], dict):
        raise FormatError(f"{path}: {where} refers to {key}[{index!r}], which does not exist")
    return items[index]


def _int(path, obj: dict, key: str, where: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FormatError(f"{path}: {where}.{key} must be a non-negative integer, got {value!r}")
    return value


def _accessor(path, doc: dict, blob: bytes, index: int, name: str) -> np.ndarray:
    """Accessor ``index`` as float64 ``[count, width]`` (normalized integers mapped to [-1, 1] /
    [0, 1] as glTF says)."""
    where = f"attribute {name} (accessors[{index}])"
    acc = _get(path, doc, "accessors", index, f"attribute {name}")
    if "sparse" in acc:
        raise FormatError(f"{path}: {where} is sparse; splatnet does not read sparse accessors")
    kind, ctype = acc.get("type"), acc.get("componentType")
    if kind not in _WIDTH or ctype not in _DTYPE:
        raise FormatError(f"{path}: {where} has type {kind!r} / componentType {ctype!r}")
    normalized = bool(acc.get("normalized", False))
    allowed = _ALLOWED.get(name, {(FLOAT, False)})
    if (ctype, normalized) not in allowed:
        raise FormatError(f"{path}: {where}: componentType {ctype}"
                          f"{' normalized' if normalized else ''} is not allowed for it")
    count, width = _int(path, acc, "count", where), _WIDTH[kind]
    dtype = np.dtype(_DTYPE[ctype])
    element = dtype.itemsize * width
    if "bufferView" not in acc:
        raise FormatError(f"{path}: {where} has no bufferView")
    view = _get(path, doc, "bufferViews", acc["bufferView"], where)
    buffer = _get(path, doc, "buffers", view.get("buffer"), f"bufferViews[{acc['bufferView']}]")
    if "uri" in buffer:
        raise FormatError(f"{path}: its buffer is an external file ({str(buffer['uri'])[:60]!r}); "
                          "splatnet reads self-contained .glb files")
    v_off = _int(path, view, "byteOffset", "bufferView", 0)
    v_len = _int(path, view, "byteLength", "bufferView")
    stride = _int(path, view, "byteStride", "bufferView", 0) or element
    a_off = _int(path, acc, "byteOffset", where, 0)
    if v_off + v_len > len(blob) or _int(path, buffer, "byteLength", "buffer") > len(blob):
        raise FormatError(f"{path}: {where}: its buffer view (bytes {v_off}..{v_off + v_len}) lies "
                          f"outside the {len(blob)}-byte binary chunk")
    if stride < element or (count and a_off + stride * (count - 1) + element > v_len):
        raise FormatError(f"{path}: {where}: {count} elements of {element} bytes (stride {stride}) "
                          f"from byte {a_off} do not fit its {v_len}-byte buffer view")
    if count == 0:
        return np.zeros((0, width))
    start = v_off + a_off
    rows = np.lib.stride_tricks.as_strided(
        np.frombuffer(blob, np.uint8, stride * (count - 1) + element, start),
        shape=(count, element), strides=(stride, 1))
    values = np.ascontiguousarray(rows).view(dtype).reshape(count, width).astype(np.float64)
    if normalized:
        top = float(np.iinfo(dtype).max)
        values = np.maximum(values / top, -1.0)
    return values


def _node_matrices(path, doc: dict) -> list[tuple[int, np.ndarray]]:
    """``(mesh index, world matrix)`` of every node of the default scene that has a mesh."""
    scenes = doc.get("scenes") or []
    if not scenes:  # no scene: every node that is no other node's child
        nodes = [n for n in doc.get("nodes") or [] if isinstance(n, dict)]
        children = {c for n in nodes for c in n.get("children", []) if isinstance(c, int)}
        roots = [i for i in range(len(doc.get("nodes") or [])) if i not in children]
    else:
        scene = _get(path, doc, "scenes", doc.get("scene", 0), "scene")
        roots = scene.get("nodes", [])
    out, seen = [], set()

    def local(node: dict) -> np.ndarray:
        if "matrix" in node:
            m = np.asarray(node["matrix"], dtype=np.float64)
            if m.shape != (16,):
                raise FormatError(f"{path}: a node matrix must have 16 numbers")
            return m.reshape(4, 4).T  # column-major
        t = np.asarray(node.get("translation", [0, 0, 0]), dtype=np.float64)
        r = np.asarray(node.get("rotation", [0, 0, 0, 1]), dtype=np.float64)
        s = np.asarray(node.get("scale", [1, 1, 1]), dtype=np.float64)
        if t.shape != (3,) or r.shape != (4,) or s.shape != (3,):
            raise FormatError(f"{path}: malformed node translation / rotation / scale")
        m = np.eye(4)
        m[:3, :3] = quat_to_matrix(r[[3, 0, 1, 2]]) * s[None, :]
        m[:3, 3] = t
        return m

    def visit(index: object, parent: np.ndarray, depth: int) -> None:
        if depth > 64:
            raise FormatError(f"{path}: node hierarchy deeper than 64 levels")
        node = _get(path, doc, "nodes", index, "a scene")
        if index in seen:
            raise FormatError(f"{path}: node {index} appears twice in the scene (a cycle?)")
        seen.add(index)
        world = parent @ local(node)
        if "mesh" in node:
            out.append((node["mesh"], world))
        for child in node.get("children", []):
            visit(child, world, depth + 1)

    for root in roots:
        visit(root, np.eye(4), 0)
    return out


def _transform(path, a: SplatArrays, m: np.ndarray) -> SplatArrays:
    """Apply a node's world matrix (rigid with a uniform scale) to the Gaussians."""
    if not np.isfinite(m).all():
        raise FormatError(f"{path}: a node transform is not finite")
    if np.allclose(m, np.eye(4), atol=1e-12):
        return a
    lin = m[:3, :3]
    s = np.cbrt(np.linalg.det(lin))
    r = lin / s if s > 0 else lin
    if s <= 0 or not np.allclose(r @ r.T, np.eye(3), atol=1e-5) or not np.allclose(m[3], [0, 0, 0, 1]):
        raise FormatError(f"{path}: a node transform is not a rotation, translation and uniform "
                          "scale; splatnet cannot carry it into Gaussians")
    quats = quat_multiply(matrix_to_quat(r)[None], a.quats)
    sh = a.sh.copy()
    for band, d in enumerate(sh_rotation_matrices(torch.tensor(r), a.sh_degree), start=1):
        sh[:, band * band:(band + 1) ** 2] = np.einsum("ij,njc->nic", d.numpy(),
                                                        a.sh[:, band * band:(band + 1) ** 2])
    return SplatArrays(a.means @ lin.T + m[:3, 3], quats, a.scales * s, a.opacities, sh)


def _primitive(path, doc: dict, blob: bytes, prim: dict, where: str) -> SplatArrays:
    if prim.get("mode", 4) != 0:
        raise FormatError(f"{path}: {where}: a {EXTENSION} primitive must have mode 0 (POINTS), "
                          f"got {prim.get('mode', 4)}")
    ext = prim["extensions"][EXTENSION]
    if not isinstance(ext, dict):
        raise FormatError(f"{path}: {where}: its {EXTENSION} object is not a JSON object")
    if ext.get("kernel", "ellipse") != "ellipse":
        log.warning("%s: %s: kernel %r read as the 3DGS ellipse", path, where, ext.get("kernel"))
    if ext.get("colorSpace", "srgb_rec709_display") != "srgb_rec709_display":
        log.warning("%s: %s: colour space %r; splatnet renders colours as stored (sRGB display)",
                    path, where, ext.get("colorSpace"))
    attrs = prim.get("attributes")
    if not isinstance(attrs, dict):
        raise FormatError(f"{path}: {where} has no attributes")
    needed = ["POSITION", PREFIX + "ROTATION", PREFIX + "SCALE", PREFIX + "OPACITY"]
    missing = [n for n in needed if n not in attrs]
    if missing or (_sh_name(0, 0) not in attrs and "COLOR_0" not in attrs):
        raise FormatError(f"{path}: {where} lacks {missing or [_sh_name(0, 0)]}")
    degree = 0
    while degree < 3 and _sh_name(degree + 1, 0) in attrs:
        degree += 1
    extra = [n for n in attrs if n.startswith(PREFIX + "SH_DEGREE_")
             and not any(n == _sh_name(b, c) for b in range(degree + 1) for c in range(2 * b + 1))]
    incomplete = [_sh_name(b, c) for b in range(1, degree + 1) for c in range(2 * b + 1)
                  if _sh_name(b, c) not in attrs]
    if extra or incomplete:
        raise FormatError(f"{path}: {where}: spherical harmonics not a complete set of degree 0-3 "
                          f"({'missing ' + ', '.join(incomplete) if incomplete else ''}"
                          f"{'unexpected ' + ', '.join(extra) if extra else ''})")
    data = {n: _accessor(path, doc, blob, attrs[n], n) for n in attrs
            if n in needed or n.startswith(PREFIX + "SH_DEGREE_") or n == "COLOR_0"}
    counts = {n: len(v) for n, v in data.items()}
    if len(set(counts.values())) != 1:
        raise FormatError(f"{path}: {where}: attributes disagree on the Gaussian count: {counts}")
    for name, width in (("POSITION", 3), (PREFIX + "ROTATION", 4), (PREFIX + "SCALE", 3),
                        (PREFIX + "OPACITY", 1)):
        if data[name].shape[1] != width:
            raise FormatError(f"{path}: {where}: {name} must have {width} components")
    n = counts["POSITION"]
    k = (degree + 1) ** 2
    sh = np.zeros((n, k, 3))
    if _sh_name(0, 0) in data:
        i = 0
        for band in range(degree + 1):
            for coef in range(2 * band + 1):
                values = data[_sh_name(band, coef)]
                if values.shape[1] != 3:
                    raise FormatError(f"{path}: {where}: {_sh_name(band, coef)} must be VEC3")
                sh[:, i] = values
                i += 1
    else:  # the fallback colour (gamut-limited, but all there is)
        sh[:, 0] = (data["COLOR_0"][:, :3] - 0.5) / SH_C0
    return SplatArrays(data["POSITION"], data[PREFIX + "ROTATION"][:, [3, 0, 1, 2]],
                       data[PREFIX + "SCALE"], data[PREFIX + "OPACITY"][:, 0], sh)


def read_glb(path: str | os.PathLike) -> dict:
    """Read the Gaussians of a ``KHR_gaussian_splatting`` glb → float32 ``means, quats, scales,
    opacities, sh`` (activated, in splatnet's PLY axes). Every splat primitive of the default
    scene is read (node transforms applied) and concatenated; a malformed file is one
    :class:`FormatError` naming it."""
    path, data = read_file_bytes(path, "glb", MAX_FILE_BYTES)
    doc, blob = _chunks(path, data)
    if not isinstance(doc.get("asset"), dict) or str(doc["asset"].get("version")) != "2.0":
        raise FormatError(f"{path}: not a glTF 2.0 asset (asset.version is "
                          f"{(doc.get('asset') or {}).get('version')!r})")
    required = [e for e in doc.get("extensionsRequired", []) if e != EXTENSION]
    if required:
        raise FormatError(f"{path}: requires the glTF extension(s) {', '.join(map(str, required))}, "
                          "which splatnet does not read")
    parts = []
    for mesh_index, world in _node_matrices(path, doc):
        mesh = _get(path, doc, "meshes", mesh_index, "a node")
        for p, prim in enumerate(mesh.get("primitives", [])):
            if isinstance(prim, dict) and EXTENSION in (prim.get("extensions") or {}):
                a = _primitive(path, doc, blob, prim, f"meshes[{mesh_index}].primitives[{p}]")
                parts.append(_transform(path, a, world))
    if not parts:
        if doc.get("meshes") or EXTENSION not in doc.get("extensionsUsed", []):
            raise FormatError(f"{path}: no {EXTENSION} primitive in the default scene (not a "
                              "Gaussian splat glb)")
        parts = [SplatArrays(np.zeros((0, 3)), np.zeros((0, 4)), np.zeros((0, 3)), np.zeros(0),
                             np.zeros((0, 1, 3)))]
    k = max(p.sh.shape[1] for p in parts)
    for p in parts:
        p.sh = np.concatenate([p.sh, np.zeros((p.count, k - p.sh.shape[1], 3))], axis=1)
    a = SplatArrays(*(np.concatenate([getattr(p, f) for p in parts])
                      for f in ("means", "quats", "scales", "opacities", "sh")))
    return check_values(path, rotate_z_180(a)).tensors()

