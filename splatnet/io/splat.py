"""The ``.splat`` web format (antimatter15's viewer and its descendants).

32 bytes per Gaussian, little-endian: position float32×3, scale float32×3 (activated), colour
RGBA uint8×4 (DC colour ``0.5 + SH_C0·f_dc`` and opacity, ×255; a colour above 1 is moved
into the opacity first, as for PLY, see :mod:`splatnet.io.colours`), rotation uint8×4 as
``q/|q|·128 + 128`` (w, x, y, z). Sorted by ``size × opacity`` descending, size = product of scales.
View-dependent SH bands are not representable and are dropped.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import numpy as np
import torch

from splatnet.errors import ValidationError
from splatnet.io.atomic import atomic_write
from splatnet.io.colours import fit_colours_to_unit_range
from splatnet.sh import SH_C0

if TYPE_CHECKING:  # the type is only named here: Gaussians.save_splat calls this module
    from splatnet.gaussians import Gaussians

log = logging.getLogger(__name__)

SPLAT_DTYPE = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4),
                        ("rot", "u1", 4)])
assert SPLAT_DTYPE.itemsize == 32


def gaussians_to_splat(g: Gaussians) -> tuple[bytes, int]:
    """Encode ``g`` (one scene); returns the bytes and how many non-finite Gaussians were dropped."""
    if g.batch_shape:
        raise ValidationError(f".splat export needs one scene; batch shape is {g.batch_shape}")
    with torch.no_grad():
        means = g.means.detach().to("cpu", torch.float64).numpy()
        scales = g.scales.detach().to("cpu", torch.float64).numpy()
        sh, opac = fit_colours_to_unit_range(g.sh[:, :1].detach().to("cpu", torch.float64),
                                             g.opacities.detach().to("cpu", torch.float64))
        opac, dc = opac.numpy(), sh[:, 0, :].numpy()
        quats = g.quats.detach().to("cpu", torch.float64).numpy()
    qn = np.linalg.norm(quats, axis=1)
    finite = (np.isfinite(means).all(1) & np.isfinite(scales).all(1) & np.isfinite(opac)
              & np.isfinite(dc).all(1) & np.isfinite(quats).all(1) & (qn > 0))
    dropped = int((~finite).sum())
    means, scales, opac, dc, quats, qn = (a[finite] for a in (means, scales, opac, dc, quats, qn))
    order = np.argsort(-(scales.prod(axis=1) * opac), kind="stable")
    rec = np.zeros(len(order), dtype=SPLAT_DTYPE)
    rec["position"] = means[order]
    rec["scale"] = scales[order]
    rgb = np.clip(0.5 + SH_C0 * dc[order], 0.0, 1.0)
    rgba = np.concatenate([rgb, np.clip(opac[order], 0.0, 1.0)[:, None]], axis=1)
    rec["rgba"] = np.clip(np.round(rgba * 255.0), 0, 255).astype(np.uint8)
    q = quats[order] / qn[order, None]
    rec["rot"] = np.clip(np.round(q * 128.0 + 128.0), 0, 255).astype(np.uint8)
    return rec.tobytes(), dropped


def save_splat(g: Gaussians, path: str | os.PathLike) -> int:
    """Write ``g`` as ``.splat`` atomically; returns the number of dropped non-finite Gaussians."""
    data, dropped = gaussians_to_splat(g)
    if dropped:
        log.warning(".splat export: dropped %d non-finite Gaussian(s) of %d", dropped,
                    g.num_gaussians)
    if g.sh_degree > 0:
        log.info(".splat export: SH bands above degree 0 are not representable and were dropped")
    with atomic_write(path, "wb") as f:
        f.write(data)
    return dropped
