"""Converters from other datasets' layouts to splatnet clips (``splatnet convert KIND SRC DST``).

Each converter reads its source, builds :class:`~splatnet.clip.CameraSpec` /
:class:`~splatnet.clip.FrameSpec` lists and writes through :func:`~splatnet.clip.write_clip`, so
converted clips obey the same validation and atomic-write rules as any other. Real metres and
real timestamps are kept. Each module's docstring documents its conventions.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from splatnet.errors import ValidationError

#: kind -> (module, function)
CONVERTERS: dict[str, tuple[str, str]] = {
    "dgp": ("splatnet.clip.convert.dgp", "convert_dgp"),
    "nuscenes": ("splatnet.clip.convert.nuscenes", "convert_nuscenes"),
    "nerfstudio": ("splatnet.clip.convert.nerfstudio", "convert_nerfstudio"),
    "colmap": ("splatnet.clip.convert.colmap", "convert_colmap"),
    "pandaset": ("splatnet.clip.convert.pandaset", "convert_pandaset"),
}


def convert(kind: str, src: str | os.PathLike, dst: str | os.PathLike, **options: Any) -> Path:
    """Convert ``src`` (a dataset of type ``kind``) into a clip directory ``dst``.

    ``options`` are passed to the converter: ``overwrite`` (all), ``scene`` (dgp: unused;
    nuscenes), ``version`` (nuscenes), ``images`` (colmap: the image directory), ``frames`` and
    ``size`` (pandaset: a frame subset, an ``(H, W)`` image size), ``actors`` (dgp, nuscenes,
    pandaset: False leaves the annotated 3D boxes out of the clip), ``masks`` (dgp, nuscenes,
    pandaset: a directory of ``<camera>.png`` validity masks).
    """
    if kind not in CONVERTERS:
        raise ValidationError(f"unknown converter kind {kind!r}; available: {', '.join(CONVERTERS)}")
    if options.get("masks") is not None and kind not in ("dgp", "nuscenes", "pandaset"):
        raise ValidationError(f"masks: the {kind} converter does not take camera masks "
                              "(only dgp, nuscenes, pandaset)")
    module, func = CONVERTERS[kind]
    return getattr(importlib.import_module(module), func)(Path(src), Path(dst), **options)


__all__ = ["CONVERTERS", "convert"]
