"""``resolve_device``: the one place that turns a user's device (``"cpu"``, ``"cuda:1"``, a
``torch.device``) into a ``torch.device`` splatnet can run on, or one clear error."""

from __future__ import annotations

import torch

from splatnet.errors import BackendUnavailableError, ValidationError


def resolve_device(device: str | torch.device | None, option: str = "device") -> torch.device:
    """``device`` as a ``torch.device`` once splatnet can run there, else one clear error.

    Accepted: ``cpu``, ``cuda`` and ``cuda:N``, with a GPU present (and index ``N`` on this
    machine) and splatnet's CUDA kernels built. ``option`` names the input in messages (the CLI
    passes ``--device``).
    """
    if device is None:
        return torch.device("cpu")
    value = str(device)
    label = f"{option} {value}" if option.startswith("-") else f"{option} {value!r}"
    accepted = "splatnet runs on cpu, cuda or cuda:N (N a GPU index)"
    try:
        dev = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError, ValueError):
        raise ValidationError(f"{label}: {accepted}") from None
    if dev.type not in ("cpu", "cuda") or (dev.type == "cpu" and dev.index not in (None, 0)):
        raise ValidationError(f"{label}: {accepted}")
    if dev.type == "cpu":
        return dev
    if not torch.cuda.is_available():
        cpu_only = torch.version.cuda is None and getattr(torch.version, "hip", None) is None
        why = ("the installed torch has no CUDA support" if cpu_only
               else "torch.cuda.is_available() is False")
        cpu = f"{option} cpu" if option.startswith("-") else "'cpu'"
        raise BackendUnavailableError(f"{label}: no GPU is present ({why}); use {cpu}")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise ValidationError(f"{label}: this machine has {count} GPU{'s' if count > 1 else ''} "
                              f"(cuda:0 to cuda:{count - 1})")
    from splatnet._ext import cuda_unavailable_reason

    why = cuda_unavailable_reason()
    if why is not None:
        raise BackendUnavailableError(f"{label}: {why}")
    return dev
