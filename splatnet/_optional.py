"""Optional dependencies: one place that imports them and, when one is missing, says in one line
which feature needs it and what installs it (the extras of ``pyproject.toml``)::

    o3d = require("open3d", "the synthetic clip generator (splatnet synth)", extra="open3d")
    # -> "the synthetic clip generator (splatnet synth) needs open3d: pip install 'splatnet[open3d]'"
"""

from __future__ import annotations

import importlib
from types import ModuleType

from splatnet.errors import SplatnetError


class MissingDependencyError(SplatnetError, ImportError):
    """An optional dependency is not installed (or fails to import). Also an ``ImportError``, so
    code that falls back when a module is absent keeps working."""


def require(module: str, feature: str, *, extra: str | None) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`MissingDependencyError`.

    ``extra``: the ``splatnet[...]`` extra that installs it (``open3d``, ``gsplat``, ``video``,
    ``formats``, ``cluster``, ``viewer``), or ``None`` for a package no extra provides (then
    ``pip install`` the top-level name).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        missing = isinstance(exc, ModuleNotFoundError) and exc.name in (module, top)
        if missing:
            how = f"pip install 'splatnet[{extra}]'" if extra else f"pip install {top}"
            raise MissingDependencyError(f"{feature} needs {module}: {how}") from exc
        # Installed, but it (or a library it loads) is broken: say so rather than "install it".
        detail = " ".join(str(exc).split())
        raise MissingDependencyError(
            f"{feature} needs {module}, which is installed but failed to import: {detail}"
        ) from exc
