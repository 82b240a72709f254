"""splatnet: feed-forward 3D Gaussian splatting from multi-camera driving and robotics logs.

The public API, importable from the top level::

    import splatnet
    g = splatnet.Gaussians.load_ply("scene.ply")
    out = splatnet.render(g, cameras)            # differentiable, CPU (C++) or CUDA

Heavy submodules (the renderer's extension, the network, open3d) load on first use, so
``import splatnet`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .cameras import Cameras
from .errors import BackendUnavailableError, FormatError, SplatnetError, ValidationError
from .gaussians import Gaussians
from .render import RenderOutput, render  # the function, not the package of the same name

__version__ = "0.1.0"

# name -> module that defines it; resolved lazily by __getattr__.
_LAZY = {
    "reconstruct": "splatnet.feedforward",
    "optimize": "splatnet.optim",
    "Clip": "splatnet.clip",
    "GaussianHead": "splatnet.head",
    "load_model": "splatnet.checkpoint",
    "losses": "splatnet.losses",
    "models": "splatnet.models",
}

__all__ = [
    "BackendUnavailableError",
    "Cameras",
    "FormatError",
    "Gaussians",
    "SplatnetError",
    "ValidationError",
    "RenderOutput",
    "__version__",
    "render",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'splatnet' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from . import losses, models
    from .checkpoint import load_model
    from .clip import Clip
    from .feedforward import reconstruct
    from .head import GaussianHead
    from .optim import optimize
