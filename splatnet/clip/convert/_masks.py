"""Per-camera validity masks given to a converter (``splatnet convert ... --masks DIR``).

A driving dataset that shows the ego's own body (DDAD's hood and mirrors, for one) publishes one
static mask per camera; the clip format stores it as the camera's ``mask`` (nonzero = valid, 0 =
not the scene), and splatnet then places no Gaussians there and scores no pixels there.
``DIR/<camera name>.png``: 8-bit or 1-bit single-channel PNG (RGB is converted to grey), any size
with the camera's aspect ratio (resized, nearest, to the converted image size).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from splatnet.clip._files import probe_image, read_mask
from splatnet.errors import ValidationError

#: A mask that marks less than this fraction valid is probably inverted: said in a warning.
MOSTLY_INVALID = 0.3


def camera_masks(directory: str | Path | None, cameras: Sequence) -> dict[str, np.ndarray]:
    """``{camera name: [H, W] bool}`` from ``directory`` for the converted ``cameras``
    (:class:`~splatnet.clip.CameraSpec`, sizes as written); ``{}`` for None.

    Cameras without a file get no mask. A PNG that names no camera, a mask whose aspect ratio
    differs from its camera's, or one that is not a PNG is one clear error naming the file.
    """
    if directory is None:
        return {}
    d = Path(directory).expanduser()
    if not d.is_dir():
        raise ValidationError(f"--masks {d}: not a directory (expected one <camera>.png per camera)")
    by_name = {c.name: c for c in cameras}
    files = sorted(p for p in d.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise ValidationError(f"--masks {d}: no .png files (expected <camera>.png for cameras "
                              f"{', '.join(by_name)})")
    out = {}
    for p in files:
        cam = by_name.get(p.stem)
        if cam is None:
            raise ValidationError(f"{p}: names no camera of this clip (cameras: "
                                  f"{', '.join(by_name)})")
        info = probe_image(p)
        if info.format != "png":
            raise ValidationError(f"{p}: not a PNG image")
        if abs(info.width / info.height - cam.width / cam.height) > 0.01 * cam.width / cam.height:
            raise ValidationError(f"{p}: {info.width}x{info.height} does not have the aspect ratio of "
                                  f"camera {cam.name!r} ({cam.width}x{cam.height})")
        m = read_mask(p, (cam.height, cam.width))
        frac = float(m.mean())
        if frac < MOSTLY_INVALID:
            warnings.warn(f"{p}: only {frac:.0%} of the pixels are valid (nonzero); a validity mask "
                          "marks the scene, not the ego: is it inverted?", stacklevel=2)
        out[cam.name] = m
    return out
