"""PSNR and SSIM of ``[..., H, W, 3]`` images in ``[0, 1]`` (see :mod:`splatnet.metrics`)."""

from __future__ import annotations

import torch
from torch import Tensor

from splatnet.errors import ValidationError

__all__ = ["SSIM_WINDOW", "mse", "psnr", "ssim", "ssim_map"]

SSIM_WINDOW = 11


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise ValidationError("metrics: expected two tensors [..., H, W, 3]")
    if pred.shape != target.shape or pred.dim() < 3 or pred.shape[-1] != 3:
        raise ValidationError(
            f"metrics: expected two images [..., H, W, 3] of the same shape, got "
            f"{list(pred.shape)} and {list(target.shape)}"
        )


def _shape(x: object) -> object:
    return list(x.shape) if isinstance(x, Tensor) else type(x).__name__


def mse(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error per image, ``[...]``: over the last three dimensions (all of them for
    tensors of fewer), or over the pixels where ``mask`` (broadcastable, e.g. ``[..., H, W, 1]``)
    is true."""
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor) or pred.shape != target.shape:
        raise ValidationError(
            "metrics: expected two tensors of the same shape (images [..., H, W, 3] or "
            f"[..., 3, H, W]), got {_shape(pred)} and {_shape(target)}")
    dims = tuple(range(-min(3, pred.dim()), 0))
    sq = (pred - target) ** 2
    if mask is None:
        return sq.mean(dim=dims)
    m = mask.to(sq.dtype).expand_as(sq)
    return (sq * m).sum(dim=dims) / m.sum(dim=dims).clamp_min(1)


def psnr(pred: Tensor, target: Tensor, max_val: float = 1.0, *, mask: Tensor | None = None) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, ``[...]``: ``10 log10(max² / MSE)`` (the MSE of
    :func:`mse`, over the ``mask``ed pixels when given).

    Identical images give ``inf`` (the MSE is 0); clamp the prediction to ``[0, 1]`` first when it
    comes from a renderer (as :func:`splatnet.optimization.evaluate` does).
    """
    err = mse(pred, target, mask)
    return 10.0 * torch.log10(max_val**2 / err)


def ssim_map(pred: Tensor, target: Tensor, padding: str = "same") -> Tensor:
    """Per-pixel SSIM ``[..., 3, H', W']`` (channels first, as kornia returns it)."""
    import kornia

    _check_pair(pred, target)
    lead = pred.shape[:-3]
    h, w = pred.shape[-3:-1]
    if min(h, w) < SSIM_WINDOW:
        raise ValidationError(f"ssim: images of {w}x{h} are smaller than the {SSIM_WINDOW}-pixel window")
    a = pred.reshape(-1, h, w, 3).permute(0, 3, 1, 2)
    b = target.reshape(-1, h, w, 3).permute(0, 3, 1, 2)
    out = kornia.metrics.ssim(a, b, SSIM_WINDOW, max_val=1.0, padding=padding)
    return out.reshape(*lead, *out.shape[1:])


def ssim(pred: Tensor, target: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Structural similarity per image, ``[...]``, averaged over the valid region and channels.

    With ``mask`` (``[..., H, W, 1]`` or ``[..., H, W]`` bool), only windows whose centre pixel is
    masked in count (the map is the unpadded one, so the mask is cropped by half a window).
    """
    m = ssim_map(pred, target, padding="valid")
    if mask is None:
        return m.mean(dim=(-3, -2, -1))
    h, w = pred.shape[-3:-1]
    mk = mask[..., 0] if mask.dim() == pred.dim() else mask
    if tuple(mk.shape[-2:]) != (h, w):
        raise ValidationError(f"ssim: mask of shape {_shape(mask)} does not match images of "
                              f"{w}x{h}")
    r = SSIM_WINDOW // 2
    mk = mk[..., r:h - r, r:w - r].to(m.dtype).unsqueeze(-3).expand_as(m)
    return (m * mk).sum(dim=(-3, -2, -1)) / mk.sum(dim=(-3, -2, -1)).clamp_min(1)
