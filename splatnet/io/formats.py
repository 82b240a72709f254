"""The splat file formats in one table: which format a path is (its content when reading, its
extension when writing), the reader and writer of each, and the size splatnet's PLY of the same
Gaussians would have (for compression ratios). ``Gaussians.load`` / ``Gaussians.save`` and
``splatnet export`` / ``info`` go through here; docs/formats.md describes each format.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from splatnet.errors import FormatError, ValidationError
from splatnet.sh import num_sh_bases

if TYPE_CHECKING:
    from splatnet.gaussians import Gaussians


@dataclass(frozen=True)
class SplatFormat:
    """A file format: its name (``--format``), the extensions it is written with (the first is
    the usual one), what it is, and whether splatnet reads it."""

    name: str
    extensions: tuple[str, ...]
    description: str
    readable: bool


FORMATS: dict[str, SplatFormat] = {f.name: f for f in (
    SplatFormat("ply", (".ply",), "3DGS PLY, float32, lossless interchange", True),
    SplatFormat("compressed-ply", (".compressed.ply", ".ply"),
                "PlayCanvas compressed PLY, 256-Gaussian chunks, 16 bytes + SH bytes each", True),
    SplatFormat("spz", (".spz",), "Niantic SPZ (version 4, zstd), about 10x smaller than PLY", True),
    SplatFormat("glb", (".glb",), "glTF binary with KHR_gaussian_splatting, float32", True),
    SplatFormat("splat", (".splat",), "antimatter15 .splat, 32 bytes, SH degree 0", False),
)}
FORMAT_NAMES = tuple(FORMATS)


def output_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The format to write ``path`` in: ``format`` when given (the path's extension must be one of
    its extensions), else the one its extension names (``.compressed.ply`` before ``.ply``)."""
    name = Path(path).name.lower()
    if format is not None:
        if format not in FORMATS:
            raise ValidationError(f"format {format!r}: expected one of {', '.join(FORMAT_NAMES)}")
        if not name.endswith(FORMATS[format].extensions):
            raise ValidationError(f"{path}: a {format} file must end in "
                                  f"{' or '.join(FORMATS[format].extensions)}")
        return format
    for fmt in ("compressed-ply", "ply", "spz", "glb", "splat"):
        if name.endswith(FORMATS[fmt].extensions[0]):
            return fmt
    raise ValidationError(f"{path}: the output must end in "
                          f"{', '.join(e for f in FORMATS.values() for e in f.extensions[:1])}")


def input_format(path: str | os.PathLike) -> str:
    """The format of an existing file, from its first bytes (the extension can lie)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise FormatError(f"{path}: is a directory, not a splat file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:3] == b"ply":
        from splatnet.io.compressed_ply import is_compressed_ply

        return "compressed-ply" if is_compressed_ply(path) else "ply"
    if head == b"glTF":
        return "glb"
    if head == b"NGSP" or head[:2] == b"\x1f\x8b":
        return "spz"
    if path.suffix.lower() == ".splat":
        raise FormatError(f"{path}: splatnet writes .splat files but does not read them (the "
                          "format drops SH bands and has no header to check); use a PLY")
    raise FormatError(f"{path}: not a splat file splatnet reads (PLY, compressed PLY, SPZ or "
                      "KHR_gaussian_splatting glb: none of their signatures)")


def read_splats(path: str | os.PathLike) -> tuple[dict, str]:
    """The fields of a splat file of any readable format (float32 tensors ``means, quats, scales,
    opacities, sh``, activated, splatnet's PLY axes) and the format's name."""
    fmt = input_format(path)
    reader: Callable[[str | os.PathLike], dict]
    if fmt == "ply":
        from splatnet.io.ply import read_ply as reader
    elif fmt == "compressed-ply":
        from splatnet.io.compressed_ply import read_compressed_ply as reader
    elif fmt == "spz":
        from splatnet.io.spz import read_spz as reader
    else:
        from splatnet.io.gltf import read_glb as reader
    return reader(path), fmt


def write_splats(g: Gaussians, path: str | os.PathLike, format: str | None = None, *,
                 clamp_colors: bool = True, spz_version: int | None = None) -> int:
    """Write ``g`` in ``format`` (default: from the extension, :func:`output_format`)
    atomically; returns how many non-finite Gaussians were dropped. ``clamp_colors`` as for PLY
    (not for ``.splat``, which always fits colours to 8 bits); ``spz_version`` 3 or 4 (default
    4) for SPZ only."""
    fmt = output_format(path, format)
    if spz_version is not None and fmt != "spz":
        raise ValidationError(f"spz_version: only for SPZ output, not {fmt}")
    if fmt == "ply":
        from splatnet.io.ply import save_ply

        return save_ply(g, path, clamp_colors=clamp_colors)
    if fmt == "compressed-ply":
        from splatnet.io.compressed_ply import write_compressed_ply

        return write_compressed_ply(g, path, clamp_colors=clamp_colors)
    if fmt == "spz":
        from splatnet.io.spz import LATEST_VERSION, write_spz

        return write_spz(g, path, version=spz_version or LATEST_VERSION, clamp_colors=clamp_colors)
    if fmt == "glb":
        from splatnet.io.gltf import write_glb

        return write_glb(g, path, clamp_colors=clamp_colors)
    from splatnet.io.splat import save_splat

    return save_splat(g, path)


def ply_size(count: int, sh_degree: int) -> int:
    """Bytes of splatnet's PLY of ``count`` Gaussians of ``sh_degree`` (header + 4-byte floats)."""
    from splatnet.io.ply import ply_header

    props = 3 + 3 + 3 + 3 * (num_sh_bases(sh_degree) - 1) + 1 + 3 + 4
    return len(ply_header(count, sh_degree)) + 4 * props * count
