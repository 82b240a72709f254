"""Loading of the compiled extension ``splatnet._C`` and the checks that name its absence.

Importing splatnet never fails because the extension lacks CUDA (or is missing entirely): the
call that needs it raises :class:`BackendUnavailableError` naming the cause and the fix.
"""

from __future__ import annotations

import functools
import json

import torch

from splatnet.errors import BackendUnavailableError

_REBUILD = "pip install --no-build-isolation -e . (from the splatnet source tree)"


@functools.cache
def _load() -> tuple[bool, str]:
    """Import the extension once; returns (loaded, error message)."""
    try:
        from splatnet import _C  # noqa: F401  (registers torch.ops.splatnet.*)
    except ImportError as exc:  # pragma: no cover - depends on the installation
        return False, f"the compiled extension splatnet._C could not be imported ({exc})"
    return True, ""


def require_cpu() -> None:
    """Raise unless the C++ CPU kernels are available."""
    ok, why = _load()
    if not ok:
        raise BackendUnavailableError(f"{why}; rebuild it with: {_REBUILD}")


@functools.cache
def build_info() -> dict:
    """What the extension was built with: ``{"cuda": bool, "reason": str}``."""
    require_cpu()
    return json.loads(torch.ops.splatnet.build_info())


def cuda_unavailable_reason() -> str | None:
    """None when the CUDA kernels can run here, else a sentence naming the cause and the fix."""
    ok, why = _load()
    if not ok:
        return f"{why}; rebuild it with: {_REBUILD}"
    info = build_info()
    if not info["cuda"]:
        reason = info.get("reason") or "built without CUDA"
        return (
            f"splatnet was built without its CUDA kernels ({reason}); install a CUDA build of "
            f"torch and a CUDA toolkit (nvcc, CUDA_HOME), then rebuild with "
            f"SPLATNET_FORCE_CUDA=1 {_REBUILD}"
        )
    if not torch.cuda.is_available():
        return "splatnet has CUDA kernels but torch sees no CUDA device (torch.cuda.is_available() is False)"
    major, minor = torch.cuda.get_device_capability()
    arch = f"sm_{major}{minor}"
    arch_list = torch.cuda.get_arch_list()
    if arch_list and arch not in arch_list and f"compute_{major}{minor}" not in arch_list:
        # torch's own list is a proxy; our build honours TORCH_CUDA_ARCH_LIST at build time.
        return (
            f"this GPU is {arch}, which the installed torch was not built for ({arch_list}); rebuild "
            f"with TORCH_CUDA_ARCH_LIST=\"{major}.{minor}\" {_REBUILD}"
        )
    return None


def require_cuda() -> None:
    """Raise :class:`BackendUnavailableError` unless the CUDA kernels can run."""
    why = cuda_unavailable_reason()
    if why is not None:
        raise BackendUnavailableError(why)
