"""Bounds on user-given sizes, checked before anything is allocated (no torch here: the CLI's
argument parser uses them too).

Why these numbers: real driving cameras are 1.4-2.4 MP (nuScenes 1600×900, PandaSet 1920×1080,
DDAD 1936×1216) and 4K UHD is 8.3 MP; 2**24 pixels (16.8 MP, e.g. 4096×4096) leaves twice that
headroom while one float32 RGB + alpha + depth image stays at 320 MiB. 8192 per side allows wide
panoramas (8192×2048) and keeps tile and pixel indices far from 32-bit overflow.
"""

from __future__ import annotations

from .errors import ValidationError

MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 1 << 24


def image_size_problem(h: int, w: int) -> str | None:
    """Why ``h × w`` is not an acceptable image size, or ``None`` when it is."""
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
