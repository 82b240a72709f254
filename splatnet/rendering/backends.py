"""The renderer's backends, in one registry: what each runs on and why it may be unavailable.

A backend is either two stages, ``project`` then ``rasterize`` (``torch``, ``cpu``, ``cuda``:
the same signatures, see :mod:`splatnet.rendering.reference`), or one whole ``render`` call
(``gsplat``). :func:`select` turns a user's choice (or ``"auto"``) into a :class:`Backend`;
:func:`splatnet.render` and per-scene optimisation both use it. Adding a backend is one
:func:`register` call with its record.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import torch

from splatnet.errors import BackendUnavailableError, ValidationError


@dataclasses.dataclass(frozen=True)
class Backend:
    """One way to render.

    Attributes:
        name: what users pass as ``backend=``.
        devices: device types whose tensors it takes (``"cpu"``, ``"cuda"``).
        float32_only: it computes in float32 (else any floating dtype, float64 for tests).
        unavailable: why it cannot run on this machine (a sentence with the fix), or None.
        stages: the ``(project, rasterize)`` pair of a two-stage backend.
        render: a whole-render function (``gsplat_backend.render_gsplat``'s signature).
    """

    name: str
    devices: tuple[str, ...]
    float32_only: bool
    unavailable: Callable[[], str | None]
    stages: Callable[[], tuple[Callable, Callable]] | None = None
    render: Callable[[], Callable] | None = None


_REGISTRY: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    """Add (or replace) a backend under ``backend.name``."""
    if (backend.stages is None) == (backend.render is None):
        raise ValidationError(f"backend {backend.name!r}: give stages or render, not both or neither")
    _REGISTRY[backend.name] = backend


def names() -> tuple[str, ...]:
    """What ``backend=`` accepts: ``"auto"`` and every registered name."""
    return ("auto", *_REGISTRY)


def get(name: str) -> Backend:
    """The registered backend ``name`` (no availability check)."""
    if name not in _REGISTRY:
        raise ValidationError(f"backend: expected one of {names()}, got {name!r}")
    return _REGISTRY[name]


def select(name: str, device: torch.device, dtype: torch.dtype, *,
           fallback_to_reference: bool = False) -> Backend:
    """The backend to render ``dtype`` tensors on ``device`` with, checked.

    ``"auto"``: ``torch`` for float64 (the compiled kernels are float32), else ``cuda`` on CUDA
    and ``cpu`` on CPU. With ``fallback_to_reference``, ``auto`` on a CPU without the compiled
    kernels gives ``torch`` with a warning instead of an error (per-scene optimisation does).
    A named backend must take the tensors' device and dtype. Raises ``ValidationError`` for a
    mismatch and ``BackendUnavailableError`` (naming the cause and fix) for a backend that cannot
    run here.
    """
    if name == "auto":
        if dtype == torch.float64:
            return get("torch")
        chosen = get("cuda" if device.type == "cuda" else "cpu")
        why = chosen.unavailable()
        if why is not None and fallback_to_reference and chosen.name == "cpu":
            warnings.warn("splatnet's compiled CPU renderer is not available; using the "
                          f"pure-PyTorch reference renderer (much slower): {why}", stacklevel=3)
            return get("torch")
        _raise_if_unavailable(chosen, why)
        return chosen
    backend = get(name)
    if backend.float32_only and dtype != torch.float32:
        raise ValidationError(
            f"backend {name!r} computes in float32, the Gaussians are {dtype}; convert them with "
            ".to(torch.float32) or use backend='torch'")
    if device.type not in backend.devices:
        if backend.devices == ("cpu",):
            raise ValidationError(f"backend {name!r} needs CPU tensors, the inputs are on {device}")
        raise ValidationError(
            f"backend {name!r} needs CUDA tensors, the inputs are on {device}; move them with "
            ".to('cuda') or use backend='cpu'")
    _raise_if_unavailable(backend, backend.unavailable())
    return backend


def _raise_if_unavailable(backend: Backend, why: str | None) -> None:
    if why is not None:
        label = f"backend {backend.name!r}"
        raise BackendUnavailableError(why if why.startswith(label) else f"{label}: {why}")


# ----------------------------------------------------------------------------- the built-ins
def _reference_stages():
    from splatnet.rendering import reference

    return reference.project_reference, reference.rasterize_reference


def _compiled_stages():
    from splatnet.rendering import _ops

    return _ops.project, _ops.rasterize


def _cpu_unavailable() -> str | None:
    from splatnet import _ext

    try:
        _ext.require_cpu()
    except BackendUnavailableError as exc:
        return str(exc)
    return None


def _cuda_unavailable() -> str | None:
    from splatnet import _ext

    return _ext.cuda_unavailable_reason()


def _gsplat_unavailable() -> str | None:
    from splatnet.rendering import gsplat_backend

    try:
        gsplat_backend._gsplat()
    except BackendUnavailableError as exc:
        return str(exc)
    return None


def _gsplat_render():
    from splatnet.rendering.gsplat_backend import render_gsplat

    return render_gsplat


register(Backend("torch", ("cpu", "cuda"), False, lambda: None, stages=_reference_stages))
register(Backend("cpu", ("cpu",), True, _cpu_unavailable, stages=_compiled_stages))
register(Backend("cuda", ("cuda",), True, _cuda_unavailable, stages=_compiled_stages))
register(Backend("gsplat", ("cuda",), True, _gsplat_unavailable, render=_gsplat_render))
