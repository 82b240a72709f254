"""The feed-forward network: :class:`SplatNet`, its config, and inference post-processing.

``SplatNet`` loads lazily: ``splatnet.head`` uses ``models.geometry`` and ``models.splatnet``
uses the head, so either can be imported first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from splatnet.models.config import (
    CostVolumeConfig,
    EncoderConfig,
    HeadConfig,
    PostprocessConfig,
    SkyConfig,
    SplatNetConfig,
)
from splatnet.models.postprocess import postprocess  # binds the function over the submodule's name
from splatnet.models.sky import SkyBackground

_LAZY = {
    "SplatNet": "splatnet.models.splatnet",
    "SplatNetOutput": "splatnet.models.splatnet",
}

__all__ = sorted([*_LAZY, "CostVolumeConfig", "EncoderConfig", "HeadConfig",
                  "PostprocessConfig", "SkyBackground", "SkyConfig", "SplatNetConfig",
                  "postprocess"])


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
    from splatnet.models.splatnet import SplatNet, SplatNetOutput
