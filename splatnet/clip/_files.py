"""Cheap header checks and decoders for the files a clip refers to.

``probe_*`` functions read only a file's header and tail (no decoding), so ``Clip.load`` can
validate hundreds of images up front; ``read_*`` functions decode, and are called lazily.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splatnet._limits import MAX_STORED_IMAGE_PIXELS, MAX_STORED_IMAGE_SIDE
from splatnet.clip._checks import check_image_size
from splatnet.errors import FormatError, ValidationError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# SOF markers carry the frame size; 0xC4 (DHT), 0xC8 (JPG) and 0xCC (DAC) share the range.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "jpg" | "png"
    width: int
    height: int
    channels: int
    bit_depth: int


def _read_tail(f, n: int) -> bytes:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - n))
    return f.read()


def _probe_png(f, path: Path) -> ImageInfo:
    f.seek(0)
    head = f.read(33)
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise FormatError(f"{path}: truncated or corrupt PNG header")
    width, height, bit_depth, color_type = struct.unpack(">IIBB", head[16:26])
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(color_type)
    if channels is None:
        raise FormatError(f"{path}: unsupported PNG colour type {color_type}")
    if _read_tail(f, 12) != _PNG_IEND:
        raise FormatError(f"{path}: PNG is truncated (no IEND chunk at the end of the file)")
    return ImageInfo("png", width, height, channels, bit_depth)


def _probe_jpeg(f, path: Path) -> ImageInfo:
    f.seek(2)
    info = None
    while info is None:
        b = f.read(1)
        if not b:
            raise FormatError(f"{path}: JPEG is truncated before its frame header")
        if b != b"\xff":
            raise FormatError(f"{path}: corrupt JPEG (expected a marker, got byte {b.hex()})")
        marker = 0xFF
        while marker == 0xFF:  # fill bytes
            m = f.read(1)
            if not m:
                raise FormatError(f"{path}: JPEG is truncated inside a marker")
            marker = m[0]
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA):
            raise FormatError(f"{path}: corrupt JPEG (no frame header before the image data)")
        raw = f.read(2)
        if len(raw) < 2:
            raise FormatError(f"{path}: JPEG is truncated inside a segment header")
        (length,) = struct.unpack(">H", raw)
        if length < 2:
            raise FormatError(f"{path}: corrupt JPEG (segment length {length})")
        if marker in _JPEG_SOF:
            seg = f.read(6)
            if len(seg) < 6:
                raise FormatError(f"{path}: JPEG is truncated inside its frame header")
            precision, height, width, channels = struct.unpack(">BHHB", seg)
            info = ImageInfo("jpg", width, height, channels, precision)
        else:
            f.seek(length - 2, os.SEEK_CUR)
    # Entropy-coded data never contains FF D9 (FF is stuffed), so a file cut anywhere in the scan
    # lacks the end-of-image marker. Some writers pad with zeros after it.
    if not _read_tail(f, 4096).rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise FormatError(f"{path}: JPEG is truncated (no end-of-image marker FFD9)")
    return info


def probe_image(path: Path) -> ImageInfo:
    """Format and size of a JPEG or PNG file, with a truncation check; no decoding.

    Images over the size limit (``_checks.check_image_size``) are refused here, from the header.
    """
    try:
        magic, info = _read_header(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise FormatError(f"{path}: is a directory, expected an image file") from None
    except OSError as e:
        raise FormatError(f"{path}: unreadable ({e.strerror or e})") from None
    if info is not None:
        check_image_size(info.width, info.height, str(path))
        return info
    if not magic:
        raise FormatError(f"{path}: image file is empty")
    raise FormatError(f"{path}: not a JPEG or PNG file (first bytes {magic[:8].hex()})")


def probe_npy(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a ``.npy`` header (no data read), checking the file is long enough."""
    try:
        with open(path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
            except ValueError as e:
                raise FormatError(f"{path}: not a valid .npy file ({e})") from None
            if dtype.hasobject:
                raise FormatError(f"{path}: .npy files with Python objects are not allowed")
            header_end = f.tell()
            f.seek(0, os.SEEK_END)
            size = f.tell()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise FormatError(f"{path}: is a directory, expected a .npy file") from None
    expected = header_end + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size < expected:
        raise FormatError(f"{path}: .npy file is truncated ({size} bytes, expected {expected})")
    return tuple(shape), dtype


def read_npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def _header_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG or JPEG header, or None (other format, unreadable header)."""
    try:
        _, info = _read_header(path)
    except (OSError, FormatError):
        return None  # PIL reports the problem when it opens the file
    return None if info is None else (info.width, info.height)


def _read_header(path: Path):
    """``(first bytes, info)`` of a file: its PNG or JPEG header parsed, or None for another
    format. Raises ``OSError`` (unreadable) or ``FormatError`` (a damaged header)."""
    with open(path, "rb") as f:
        magic = f.read(8)
        if magic == _PNG_SIGNATURE:
            return magic, _probe_png(f, path)
        if magic[:2] == b"\xff\xd8":
            return magic, _probe_jpeg(f, path)
        return magic, None


def _open_header(path: Path):
    """``PIL.Image.open`` (reads the header only), refusing images over the size limit.

    PNG and JPEG sizes are checked from our own header parse before PIL sees the file, so PIL
    never warns about (or refuses) a decompression bomb that our limit already stops.
    """
    from PIL import Image

    size = _header_size(path)
    if size is not None:
        check_image_size(*size, str(path))
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as e:
        raise ValidationError(
            f"{path}: image is over splatnet's limit of {MAX_STORED_IMAGE_SIDE} px a side and "
            f"{MAX_STORED_IMAGE_PIXELS} pixels ({e})"
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise FormatError(f"{path}: cannot decode image ({e})") from None
    check_image_size(img.width, img.height, str(path))
    return img


def _open_pil(path: Path):
    img = _open_header(path)
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise FormatError(f"{path}: cannot decode image ({e})") from None
    return img


def read_rgb(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an image to uint8 ``[H, W, 3]``; ``size=(H, W)`` resizes (antialiased bilinear).

    When shrinking a JPEG by 2x or more, libjpeg decodes at a reduced DCT scale first (much
    faster); that is only used when the scale divides the image size exactly, so the reduced
    image covers the same extent and the pixel-centre geometry of the resize is unchanged.
    """
    from PIL import Image

    if size is not None:
        img = _open_header(path)
        try:
            full = img.size
            if img.format == "JPEG" and (2 * size[1] <= full[0] and 2 * size[0] <= full[1]):
                img.draft("RGB", (size[1], size[0]))
                sx, sy = full[0] / img.size[0], full[1] / img.size[1]
                if sx != sy or sx != int(sx) or full[0] % img.size[0] or full[1] % img.size[1]:
                    img = Image.open(path)  # inexact reduction: decode at full size instead
            img.load()
        except (OSError, SyntaxError, ValueError) as e:
            raise FormatError(f"{path}: cannot decode image ({e})") from None
    else:
        img = _open_pil(path)
    if img.mode != "RGB":
        img = img.convert("RGB")
    if size is not None and (img.height, img.width) != tuple(size):
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    return np.array(img, dtype=np.uint8)


def read_mask(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a single-channel 8-bit (or 1-bit) PNG to bool ``[H, W]`` (nonzero = True)."""
    from PIL import Image

    img = _open_pil(path)
    if img.mode != "L":
        img = img.convert("L")
    if size is not None and (img.height, img.width) != tuple(size):
        img = img.resize((size[1], size[0]), Image.NEAREST)
    return np.array(img) > 127


def read_png16(path: Path) -> np.ndarray:
    """Decode a 16-bit grayscale PNG to uint16 ``[H, W]``."""
    img = _open_pil(path)
    if img.mode not in ("I;16", "I;16B", "I", "I;16L"):
        raise FormatError(f"{path}: expected a 16-bit grayscale PNG, got PIL mode {img.mode}")
    arr = np.asarray(img)
    return arr.astype(np.uint16)


def encode_image(rgb: np.ndarray, fmt: str, jpeg_quality: int = 95) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    if fmt == "jpg":
        img.save(buf, format="JPEG", quality=jpeg_quality, subsampling=0)
    else:
        img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def encode_png_gray(arr: np.ndarray) -> bytes:
    """uint8 or uint16 ``[H, W]`` to a grayscale PNG of the same bit depth."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    if arr.dtype == np.uint16:
        img = Image.fromarray(np.ascontiguousarray(arr, dtype="<u2"))
    else:
        img = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def read_json(path: Path) -> Any:
    """A dataset's JSON file; one clear error naming it when missing or not JSON."""
    import json

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from None
