"""SPZ, Niantic's compressed splat format (github.com/nianticlabs/spz), written from its README and
format notes.

Writes **version 4** (the current one) or 3; reads 2, 3 and 4.

- Version 4: a 32-byte plaintext header ``magic 0x5053474e ("NGSP"), version, numPoints,
  shDegree, fractionalBits, flags, numStreams (u8), tocByteOffset (u32), 12 reserved zero bytes``,
  optional vendor extension records (``u32 type, u32 length, payload``) up to ``tocByteOffset``, a
  table of contents (``u64 compressedSize, u64 uncompressedSize`` per stream), then one
  independent zstd frame per non-empty attribute stream, in the order positions, alphas, colours,
  scales, rotations, SH.
- Versions 2 and 3: one gzip stream holding a 16-byte header ``magic, version, numPoints,
  shDegree, fractionalBits, flags, reserved`` and the same attribute arrays back to back.

Attributes, per Gaussian, little-endian (what each stores and its quantisation, which bounds the
round trip; ``QUANTISATION`` holds the numbers and tests/io/test_spz.py checks them):

- position, 3 × 3 bytes: signed 24-bit fixed point with ``fractionalBits`` (12, fewer when a
  coordinate would overflow); error ≤ 2^-(fb+1) m (0.12 mm at 12).
- alpha, 1 byte: ``round(255 · opacity)`` (activated); error ≤ 1/510.
- colour, 3 bytes: ``round(255 · (0.15 · f_dc + 0.5))``, DC coefficients in [-3.33, 3.33];
  error ≤ 0.0131 in f_dc.
- scale, 3 bytes: ``round(16 · (log s + 10))``, log-scales in [-10, 5.94]; error ≤ 1/32 in log s.
- rotation (v3, v4), 4 bytes: the smallest three components of the unit quaternion (x, y, z, w
  order), 9 bits and a sign each, the index of the largest in the top 2 bits; error ≤ 6.9e-4 per
  stored component. (v2, 3 bytes: x, y, z with w ≥ 0, ``round(127.5 q + 127.5)``.)
- SH (degree ≥ 1), 3 (K-1) bytes, coefficient-major, channel-minor: ``round(128 x) + 128``
  snapped to multiples of 8 (degree 1) or 16 (degrees 2, 3); error ≤ 4.5/128 (degree 1) and
  8.5/128 (degrees 2, 3) within [-1, 0.99].

**Axes.** The SPZ README says the format stores RUB axes, but its own ``ply_to_spz`` tool and
PlayCanvas's splat-transform write and read the PLY's axes unchanged (coordinate system
``UNSPECIFIED``), and so do the files in circulation. splatnet does the same: an SPZ holds exactly
the axes of splatnet's PLY (docs/conventions.md, "File axes"), so the two open alike everywhere.

Values outside a field's range are clamped on writing (a warning counts them). Zero Gaussians
cannot be written: the reference reader refuses a file with ``numPoints`` 0.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import struct
import zlib
from typing import TYPE_CHECKING

import numpy as np

from splatnet._optional import require
from splatnet.errors import FormatError, ValidationError
from splatnet.io._splats import SplatArrays, check_values, export_arrays, read_file_bytes
from splatnet.io.atomic import atomic_write

if TYPE_CHECKING:
    from splatnet.gaussians import Gaussians

log = logging.getLogger(__name__)

MAGIC = 0x5053474E  # "NGSP" little-endian
LATEST_VERSION = 4
WRITABLE_VERSIONS = (3, 4)
READABLE_VERSIONS = (2, 3, 4)
COLOR_SCALE = 0.15
FRACTIONAL_BITS = 12
#: The reference reader refuses files above 1 GiB; so does this one.
MAX_FILE_BYTES = 1 << 30
#: A header may claim at most this many Gaussians per stored byte (the reference's 1024:1
#: compression bound over 9 position bytes per Gaussian), so a lying count is refused before
#: anything is allocated.
MAX_COMPRESSION_RATIO = 1024
_SQRT1_2 = math.sqrt(0.5)
#: Worst-case round-trip error per field (see the module docstring); ``position`` at 12
#: fractional bits.
QUANTISATION = {
    "position_m": 2.0 ** -(FRACTIONAL_BITS + 1),
    "opacity": 1 / 510,
    "f_dc": 1 / (2 * COLOR_SCALE * 255),
    "log_scale": 1 / 32,
    "rotation_component": _SQRT1_2 / (2 * 511),
    "sh_degree1": 4.5 / 128,
    "sh_degree2_3": 8.5 / 128,
}
#: Representable ranges (values outside are clamped on writing).
RANGES = {
    "f_dc": (-127.5 / (COLOR_SCALE * 255), 127.5 / (COLOR_SCALE * 255)),
    "log_scale": (-10.0, 255 / 16 - 10.0),
    "sh": (-1.0, 127 / 128),
}
_V4_HEADER = struct.Struct("<IIIBBBBI12s")  # 32 bytes
_LEGACY_HEADER = struct.Struct("<IIIBBBB")  # 16 bytes
_FLAG_ANTIALIASED = 0x1
_FLAG_EXTENSIONS = 0x2


def _sh_dim(degree: int) -> int:
    return (degree + 1) ** 2 - 1


def _stream_sizes(n: int, degree: int, version: int) -> list[int]:
    """Bytes of each attribute stream in file order: positions, alphas, colours, scales,
    rotations, SH."""
    return [9 * n, n, 3 * n, 3 * n, (4 if version >= 3 else 3) * n, 3 * _sh_dim(degree) * n]


def _round(x: np.ndarray) -> np.ndarray:
    """Round half away from zero (C's ``round``, which the reference encoder uses)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(_round(x), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------ writing
def _fractional_bits(means: np.ndarray) -> int:
    """12 fractional bits (0.24 mm), fewer when a coordinate would not fit 24 signed bits."""
    peak = float(np.abs(means).max()) if means.size else 0.0
    for bits in range(FRACTIONAL_BITS, -1, -1):
        if _round(np.array(peak * 2.0 ** bits))[()] <= (1 << 23) - 1:
            return bits
    raise ValidationError(f"SPZ export: a coordinate of {peak:.6g} m does not fit SPZ's 24-bit "
                          f"positions (at most {(1 << 23) - 1} m from the origin)")


def _pack_rotations(quats_wxyz: np.ndarray, version: int) -> np.ndarray:
    q = quats_wxyz[:, [1, 2, 3, 0]]  # the reference's x, y, z, w order
    n = len(q)
    if version < 3:
        q = np.where(q[:, 3:4] < 0, -q, q)
        return _u8(q[:, :3] * 127.5 + 127.5)
    largest = np.abs(q).argmax(axis=1)
    negate = q[np.arange(n), largest] < 0
    comp = largest.astype(np.uint32)
    for i in range(4):  # components other than the largest, first one in the highest bits
        keep = largest != i
        negbit = ((q[:, i] < 0) ^ negate).astype(np.uint32)
        mag = np.floor(511 * np.abs(q[:, i]) / _SQRT1_2 + 0.5).astype(np.uint32)
        comp = np.where(keep, (comp << np.uint32(10)) | (negbit << np.uint32(9)) | mag, comp)
    return comp.astype("<u4").view(np.uint8).reshape(n, 4)


def _pack_sh(sh: np.ndarray) -> np.ndarray:
    rest = sh[:, 1:, :]  # [N, K-1, 3]: coefficient-major, channel-minor once flattened
    q = _round(rest * 128.0) + 128.0
    bucket = np.where(np.arange(rest.shape[1]) < 3, 8.0, 16.0)[None, :, None]
    q = np.floor((q + bucket / 2) / bucket) * bucket
    return np.clip(q, 0, 255).astype(np.uint8).reshape(len(sh), -1)


def _count_clamped(a: SplatArrays) -> dict[str, int]:
    log_s = np.log(a.scales)
    return {"log-scale": int(((log_s < RANGES["log_scale"][0]) | (log_s > RANGES["log_scale"][1]))
                             .any(1).sum()),
            "DC colour": int(((a.sh[:, 0] < RANGES["f_dc"][0]) | (a.sh[:, 0] > RANGES["f_dc"][1]))
                             .any(1).sum()),
            "SH": int(((a.sh[:, 1:] < -1) | (a.sh[:, 1:] > RANGES["sh"][1])).any((1, 2)).sum())}


def encode_spz(a: SplatArrays, version: int = LATEST_VERSION) -> bytes:
    """The SPZ bytes of prepared arrays (:func:`~splatnet.io._splats.export_arrays`)."""
    if version not in WRITABLE_VERSIONS:
        raise ValidationError(f"SPZ version {version}: splatnet writes versions "
                              f"{' and '.join(map(str, WRITABLE_VERSIONS))}")
    n, degree = a.count, a.sh_degree
    if n == 0:
        raise ValidationError("SPZ export: no Gaussians to write; an SPZ file cannot be empty "
                              "(the reference reader refuses numPoints 0)")
    clamped = {k: v for k, v in _count_clamped(a).items() if v}
    if clamped:
        log.warning("SPZ export: clamped to the format's range: %s", ", ".join(
            f"{v} Gaussian(s) by {k}" for k, v in clamped.items()))
    bits = _fractional_bits(a.means)
    fixed = _round(a.means * 2.0 ** bits).astype(np.int64).astype("<i4")
    positions = fixed.view(np.uint8).reshape(n, 3, 4)[:, :, :3].reshape(n, 9)
    arrays = [positions, _u8(a.opacities * 255.0), _u8(a.sh[:, 0] * (COLOR_SCALE * 255.0) + 127.5),
              _u8((np.log(a.scales) + 10.0) * 16.0), _pack_rotations(a.quats, version),
              _pack_sh(a.sh)]
    streams = [np.ascontiguousarray(x).tobytes() for x in arrays]
    assert [len(s) for s in streams] == _stream_sizes(n, degree, version)
    if version < 4:
        header = _LEGACY_HEADER.pack(MAGIC, version, n, degree, bits, 0, 0)
        return gzip.compress(header + b"".join(streams), compresslevel=6, mtime=0)
    zstd = require("zstandard", "writing SPZ version 4 (zstd streams)", extra="formats")
    compressor = zstd.ZstdCompressor(level=12)
    chunks = [(compressor.compress(s), len(s)) for s in streams if s]
    header = _V4_HEADER.pack(MAGIC, 4, n, degree, bits, 0, len(chunks), _V4_HEADER.size, bytes(12))
    toc = b"".join(struct.pack("<QQ", len(c), u) for c, u in chunks)
    return header + toc + b"".join(c for c, _ in chunks)


def write_spz(g: Gaussians, path: str | os.PathLike, *, version: int = LATEST_VERSION,
              clamp_colors: bool = True) -> int:
    """Write ``g`` (one scene) as SPZ atomically; returns how many non-finite Gaussians were
    dropped. ``clamp_colors`` as for PLY (:func:`splatnet.io.ply.save_ply`)."""
    a, dropped = export_arrays(g, "SPZ", clamp_colors=clamp_colors)
    data = encode_spz(a, version)
    with atomic_write(path, "wb") as f:
        f.write(data)
    return dropped


# ------------------------------------------------------------------------------------ reading
def _unpack_rotations(raw: np.ndarray, version: int) -> np.ndarray:
    """``raw [N, 4|3]`` bytes → w-x-y-z quaternions ``[N, 4]``."""
    n = len(raw)
    if version < 3:
        xyz = raw.astype(np.float64) / 127.5 - 1.0
        w = np.sqrt(np.maximum(0.0, 1.0 - (xyz ** 2).sum(1)))
        return np.concatenate([w[:, None], xyz], axis=1)
    comp = np.ascontiguousarray(raw).view("<u4").reshape(n).astype(np.uint64)
    largest = (comp >> np.uint64(30)).astype(np.int64)
    q = np.zeros((n, 4))
    for i in range(3, -1, -1):  # the last stored component sits in the lowest bits
        here = largest != i
        mag = (comp & np.uint64(511)).astype(np.float64)
        neg = ((comp >> np.uint64(9)) & np.uint64(1)).astype(bool)
        q[:, i] = np.where(here, np.where(neg, -1.0, 1.0) * _SQRT1_2 * mag / 511.0, 0.0)
        comp = np.where(here, comp >> np.uint64(10), comp)
    q[np.arange(n), largest] = np.sqrt(np.maximum(0.0, 1.0 - (q ** 2).sum(1)))
    return q[:, [3, 0, 1, 2]]


def _decode(path, streams: list[bytes], n: int, degree: int, bits: int, version: int) -> SplatArrays:
    pos, alpha, colour, scale, rot, sh = (np.frombuffer(s, np.uint8) for s in streams)
    p = pos.reshape(n, 3, 3).astype(np.int32)
    fixed = p[..., 0] | (p[..., 1] << 8) | (p[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    dc = (colour.reshape(n, 3) / 255.0 - 0.5) / COLOR_SCALE
    rest = (sh.reshape(n, _sh_dim(degree), 3).astype(np.float64) - 128.0) / 128.0
    a = SplatArrays(fixed.astype(np.float64) * 2.0 ** -bits,
                    _unpack_rotations(rot.reshape(n, 4 if version >= 3 else 3), version),
                    np.exp(scale.reshape(n, 3) / 16.0 - 10.0), alpha / 255.0,
                    np.concatenate([dc[:, None, :], rest], axis=1))
    return check_values(path, a)


def _check_header(path, version: int, n: int, degree: int, bits: int, file_size: int) -> None:
    if version not in READABLE_VERSIONS:
        if version == 1:
            raise FormatError(f"{path}: SPZ version 1 (float16 positions, never released) is not "
                              "supported; splatnet reads versions 2-4")
        raise FormatError(f"{path}: SPZ version {version} is not one splatnet reads (2-4)"
                          + ("; a newer splatnet may read it" if version > LATEST_VERSION else ""))
    if degree > 3:
        raise FormatError(f"{path}: SH degree {degree}; splatnet reads SPZ files of SH degree 0-3")
    if bits > 24:
        raise FormatError(f"{path}: {bits} fractional position bits, at most 24 are possible")
    if n > file_size * MAX_COMPRESSION_RATIO // 9:
        raise FormatError(f"{path}: the header claims {n} Gaussians, more than a {file_size}-byte "
                          f"SPZ file can hold (at most {MAX_COMPRESSION_RATIO}:1 compression)")


def _skip_extensions(path, zone: bytes) -> None:
    """Vendor extension records ``u32 type, u32 length, payload`` must tile ``zone`` exactly;
    splatnet uses none of them and says which it skipped."""
    types, at = [], 0
    while at < len(zone):
        if len(zone) - at < 8:
            raise FormatError(f"{path}: malformed SPZ extension record at byte {at} of the "
                              "extension block (shorter than its 8-byte type and length)")
        kind, length = struct.unpack_from("<II", zone, at)
        if length > len(zone) - at - 8:
            raise FormatError(f"{path}: SPZ extension 0x{kind:08x} claims {length} bytes, the "
                              f"extension block has {len(zone) - at - 8} left")
        types.append(f"0x{kind:08x}")
        at += 8 + length
    if types:
        log.warning("%s: skipped SPZ vendor extension(s) %s (splatnet does not use them)", path,
                    ", ".join(types))


def _read_v4(path, data: bytes) -> SplatArrays:
    if len(data) < _V4_HEADER.size:
        raise FormatError(f"{path}: truncated SPZ: {len(data)} bytes, the version-4 header alone "
                          f"has {_V4_HEADER.size}")
    _, version, n, degree, bits, flags, num_streams, toc_at, reserved = _V4_HEADER.unpack_from(data)
    if version < 4 and version in READABLE_VERSIONS:
        raise FormatError(f"{path}: SPZ version {version} with a plaintext NGSP header; versions "
                          "2 and 3 are gzip streams (a damaged or mislabelled file)")
    _check_header(path, version, n, degree, bits, len(data))
    if reserved != bytes(12):
        raise FormatError(f"{path}: the SPZ header's reserved bytes are not zero (a damaged file, "
                          "or a layout newer than version 4)")
    if toc_at < _V4_HEADER.size or toc_at > len(data):
        raise FormatError(f"{path}: SPZ table of contents at byte {toc_at}, outside the header's "
                          f"end ({_V4_HEADER.size}) and the file's ({len(data)})")
    if flags & _FLAG_EXTENSIONS:
        _skip_extensions(path, data[_V4_HEADER.size:toc_at])
    elif toc_at != _V4_HEADER.size:
        raise FormatError(f"{path}: {toc_at - _V4_HEADER.size} bytes between the SPZ header and "
                          "its table of contents, but the header declares no extensions")
    sizes = [s for s in _stream_sizes(n, degree, 4)]
    wanted = [s for s in sizes if s]
    if num_streams != len(wanted):
        raise FormatError(f"{path}: the SPZ header declares {num_streams} streams; {n} Gaussians "
                          f"of SH degree {degree} need {len(wanted)}")
    body = toc_at + 16 * num_streams
    if body > len(data):
        raise FormatError(f"{path}: truncated SPZ: its table of contents ends at byte {body}, "
                          f"the file has {len(data)}")
    toc = [struct.unpack_from("<QQ", data, toc_at + 16 * i) for i in range(num_streams)]
    for i, ((_, raw), want) in enumerate(zip(toc, wanted)):
        if raw != want:
            raise FormatError(f"{path}: SPZ stream {i} is listed as {raw} bytes uncompressed; "
                              f"{n} Gaussians need {want}")
    total = sum(c for c, _ in toc)
    if total != len(data) - body:
        what = "truncated SPZ" if total > len(data) - body else "SPZ file longer than its table of contents"
        raise FormatError(f"{path}: {what}: the streams are listed as {total} bytes, the file "
                          f"holds {len(data) - body} after the table of contents")
    zstd = require("zstandard", "reading SPZ version 4 (zstd streams)", extra="formats")
    streams, at = [], body
    for i, (size, raw) in enumerate(toc):
        streams.append(_unzstd(path, zstd, data[at:at + size], raw, i))
        at += size
    it = iter(streams)
    full = [next(it) if s else b"" for s in sizes]
    return _decode(path, full, n, degree, bits, 4)


def _unzstd(path, zstd, frame: bytes, size: int, index: int) -> bytes:
    """One zstd frame that must decompress to exactly ``size`` bytes and end where its stream
    ends (never more than ``size`` bytes are produced)."""
    d = zstd.ZstdDecompressor().decompressobj()
    try:
        out = d.decompress(frame) if size else b""
    except zstd.ZstdError as exc:
        raise FormatError(f"{path}: SPZ stream {index} is not a valid zstd frame ({exc})") from None
    if size and (len(out) != size or not d.eof or d.unused_data):
        raise FormatError(f"{path}: SPZ stream {index} decompresses to {len(out)} bytes"
                          + ("" if d.eof else " (its zstd frame is cut short)")
                          + (" with data after its frame" if d.unused_data else "")
                          + f"; the table of contents says {size}")
    return out


def _read_legacy(path, data: bytes) -> SplatArrays:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def inflate(buf: bytes, limit: int) -> bytes:
        try:
            return d.decompress(buf, limit)
        except zlib.error as exc:
            raise FormatError(f"{path}: SPZ gzip stream is damaged ({exc})") from None

    head = inflate(data, _LEGACY_HEADER.size)
    if len(head) < _LEGACY_HEADER.size:
        raise FormatError(f"{path}: truncated SPZ: the gzip stream ends after {len(head)} bytes, "
                          "inside the 16-byte header")
    magic, version, n, degree, bits, flags, _ = _LEGACY_HEADER.unpack(head)
    if magic != MAGIC:
        raise FormatError(f"{path}: not an SPZ file (a gzip stream without the NGSP magic)")
    if version == 4:
        raise FormatError(f"{path}: SPZ version 4 inside gzip; version 4 files start with a "
                          "plaintext NGSP header (a damaged or mislabelled file)")
    _check_header(path, version, n, degree, bits, len(data))
    sizes = _stream_sizes(n, degree, version)
    want = sum(sizes)
    # deflate expands at most ~1032:1; extension records (if flagged) may add up to 1 MiB.
    room = want + (1 << 20 if flags & _FLAG_EXTENSIONS else 0) + 1
    chunks, got = [], 0
    while got < room and not d.eof:
        part = inflate(d.unconsumed_tail, room - got)
        if not part:
            break
        chunks.append(part)
        got += len(part)
    payload = b"".join(chunks)
    if not d.eof:
        if len(payload) >= room:
            raise FormatError(f"{path}: SPZ body longer than the header says: {n} Gaussians need "
                              f"{want} bytes")
        raise FormatError(f"{path}: truncated SPZ: the gzip stream ends without its end marker "
                          f"after {len(payload)} of {want} bytes of Gaussian data")
    if d.unused_data:
        raise FormatError(f"{path}: {len(d.unused_data)} bytes after the SPZ gzip stream")
    if len(payload) < want:
        raise FormatError(f"{path}: truncated SPZ: the header promises {n} Gaussians ({want} "
                          f"bytes), the gzip stream holds {len(payload)}")
    extra = len(payload) - want
    if extra:
        if not flags & _FLAG_EXTENSIONS:
            raise FormatError(f"{path}: SPZ body longer than the header says: {n} Gaussians need "
                              f"{want} bytes, the stream holds {len(payload)}")
        # Writers put the records after the arrays (current) or before them (older ones).
        try:
            _skip_extensions(path, payload[want:])
        except FormatError:
            _skip_extensions(path, payload[:extra])
            payload = payload[extra:]
    streams, at = [], 0
    for s in sizes:
        streams.append(payload[at:at + s])
        at += s
    return _decode(path, streams, n, degree, bits, version)


def read_spz(path: str | os.PathLike) -> dict:
    """Read an SPZ file (versions 2-4, SH degree 0-3) → float32 ``means, quats, scales,
    opacities, sh`` (activated, as :class:`~splatnet.Gaussians` takes them).

    A malformed file (truncated, wrong magic or version, counts or lengths that disagree, a
    damaged gzip/zstd stream, non-finite values) is one :class:`FormatError` naming it.
    """
    path, data = read_file_bytes(path, "SPZ", MAX_FILE_BYTES)
    if data[:4] == struct.pack("<I", MAGIC):
        a = _read_v4(path, data)
    elif data[:2] == b"\x1f\x8b":
        a = _read_legacy(path, data)
    else:
        raise FormatError(f"{path}: not an SPZ file (it starts with neither the version-4 NGSP "
                          "header nor a gzip stream)")
    return a.tensors()
