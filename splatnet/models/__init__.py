"""The feed-forward network: :class:`SplatNet`, its config, and inference post-processing.

Submodules load lazily so that ``splatnet.head`` (which uses ``models.geometry``) and
``models.splatnet`` (which uses the head) can import each other's modules in either order.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "SplatNet": "splatnet.models.splatnet",
    "SplatNetOutput": "splatnet.models.splatnet",
    "SplatNetConfig": "splatnet.models.config",
    "EncoderConfig": "splatnet.models.config",
    "CostVolumeConfig": "splatnet.models.config",
    "HeadConfig": "splatnet.models.config",
    "SkyConfig": "splatnet.models.config",
    "PostprocessConfig": "splatnet.models.config",
    "postprocess": "splatnet.models.postprocess",
    "SkyBackground": "splatnet.models.sky",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'splatnet.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover
    from .config import (
        CostVolumeConfig,
        EncoderConfig,
        HeadConfig,
        PostprocessConfig,
        SkyConfig,
        SplatNetConfig,
    )
    from .postprocess import postprocess
    from .sky import SkyBackground
    from .splatnet import SplatNet, SplatNetOutput
