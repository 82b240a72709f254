"""Boundary checks shared by the core types: each failure names the field and the problem."""

from __future__ import annotations

import torch
from torch import Tensor

from splatnet.errors import ValidationError


def as_tensor(name: str, value, dtype: torch.dtype | None = None) -> Tensor:
    """Accept tensors and array-likes; reject anything else with the field named."""
    if isinstance(value, Tensor):
        return value
    try:
        return torch.as_tensor(value, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValidationError(f"{name}: expected a tensor, got {type(value).__name__} ({exc})") from None


def check_float(name: str, t: Tensor) -> None:
    if not t.is_floating_point():
        raise ValidationError(f"{name}: expected a floating-point tensor, got dtype {t.dtype}")


def check_trailing(name: str, t: Tensor, trailing: tuple[int, ...], what: str) -> tuple[int, ...]:
    """Check ``t.shape == batch + trailing`` (``-1`` in trailing = any); returns the batch shape."""
    nd = len(trailing)
    ok = t.dim() >= nd and all(
        want == -1 or got == want for got, want in zip(t.shape[t.dim() - nd :], trailing)
    )
    if not ok:
        raise ValidationError(f"{name}: expected shape {what}, got {tuple(t.shape)}")
    return tuple(t.shape[: t.dim() - nd])


def check_finite(name: str, t: Tensor) -> None:
    if t.numel() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValidationError(f"{name}: {bad} non-finite value(s) (NaN or inf)")


def check_same_batch(names: str, *shapes: tuple[int, ...]) -> None:
    if any(s != shapes[0] for s in shapes):
        raise ValidationError(f"{names}: leading batch dimensions differ: {list(shapes)}")
