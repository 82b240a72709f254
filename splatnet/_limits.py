"""Bounds on user-given sizes, checked before anything is allocated (no torch here: the CLI's
argument parser uses them too). docs/architecture.md's error policy lists them.

Two kinds of image size, with their own bounds:

- **stored images** (a clip's image files, read from their headers before decoding): 16384 px a
  side and 2**26 pixels (67 MP). That holds 8K video (33 MP) and 61 MP photogrammetry cameras,
  keeps one decoded float32 view under 800 MB, and stays below PIL's own decompression-bomb
  warning (~89.5 MP), so PIL never warns or raises on an image that passed this check.
- **working sizes** (``--size``, ``Clip.views(size=...)``, the cameras given to ``render``): 8192
  px a side and 2**24 pixels (16.8 MP). Real driving cameras are 1.4-2.4 MP (nuScenes 1600×900,
  PandaSet 1920×1080, DDAD 1936×1216) and 4K UHD is 8.3 MP, so this is twice 4K, while one
  float32 RGB + alpha + depth image stays at 320 MiB and tile and pixel indices stay far from
  32-bit overflow.
"""

from __future__ import annotations

from splatnet.errors import ValidationError

#: Stored image files (clip images, masks, depth maps).
MAX_STORED_IMAGE_SIDE = 16384
MAX_STORED_IMAGE_PIXELS = 1 << 26
#: Sizes splatnet works or renders at.
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 1 << 24
#: Input pixels (views × H × W) of one network pass, checked before any image is decoded: 2**28
#: is 129 views at 1920×1080 or 4,096 at 256×256, far beyond any rig, so only a mistake (a huge
#: --size times many frames) reaches it; below it the machine's memory is the limit.
MAX_NETWORK_PIXELS = 1 << 28


def image_size_problem(h: int, w: int) -> str | None:
    """Why ``h × w`` is not an acceptable working size, or ``None`` when it is."""
    if h <= 0 or w <= 0:
        return "expected positive height and width"
    if h > MAX_IMAGE_SIDE or w > MAX_IMAGE_SIDE:
        return f"too large: each side must be at most {MAX_IMAGE_SIDE} px"
    if h * w > MAX_IMAGE_PIXELS:
        return (f"too large: {h * w} pixels, at most {MAX_IMAGE_PIXELS} (4096x4096; each side "
                f"at most {MAX_IMAGE_SIDE} px)")
    return None


def check_image_size(h: int, w: int, what: str = "size") -> tuple[int, int]:
    """``(h, w)`` as ints, or a ``ValidationError`` naming ``what`` (e.g. ``"size"``)."""
    h, w = int(h), int(w)
    problem = image_size_problem(h, w)
    if problem is not None:
        raise ValidationError(f"{what} {h}x{w}: {problem}")
    return h, w
