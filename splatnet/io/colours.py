"""Colours that 8-bit viewers can show: the DC colour ``0.5 + SH_C0 · f_dc`` within [0, 1].

Several viewers (and the ``.splat`` format) quantise each splat's DC colour to 8 bits before
blending, so a colour above 1 (the network gives some faint far sky splats up to ~1.5) shows as
1: a grey sky instead of a blue one. Clamping the colour alone would change splatnet's own render
too (-0.18 dB PSNR on the bundled clip). Instead the over-bright part moves into the opacity:
colour ``c`` (every SH band, so for every view direction) is divided by its brightest DC channel
``s`` and the opacity multiplied by it, which leaves each splat's premultiplied colour ``c · α``
unchanged at every pixel; only what lies behind the splat is occluded ``(s − 1) α`` more. The
opacity may grow only up to the renderer's ``α`` cap (``ALPHA_MAX`` = 0.99); whatever is left
above 1 after that, and any DC colour below 0, is clamped.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from splatnet._constants import ALPHA_MAX
from splatnet.sh import SH_C0


def _dc_bound() -> float:
    """The largest float32 ``f_dc`` whose colour ``0.5 + SH_C0 * f_dc`` is at most 1."""
    hi = np.float32(0.5 / SH_C0)
    while 0.5 + SH_C0 * float(hi) > 1.0:
        hi = np.nextafter(hi, np.float32(0))
    return float(hi)


DC_BOUND = _dc_bound()


def fit_colours_to_unit_range(sh: Tensor, opacities: Tensor) -> tuple[Tensor, Tensor]:
    """``sh [N, K, 3]`` and ``opacities [N]`` (float64) with every DC colour in [0, 1].

    A Gaussian whose brightest DC channel ``s = max_c(0.5 + SH_C0 · f_dc_c)`` exceeds 1 gets all
    its SH colour divided by ``t = min(s, ALPHA_MAX / o)`` (at least 1) and its opacity
    multiplied by ``t``; the DC term is then clamped to ``|f_dc| <= DC_BOUND``.
    """
    dc_rgb = 0.5 + SH_C0 * sh[:, 0, :]  # [N, 3]
    peak = dc_rgb.amax(dim=1)  # [N]
    room = torch.where(opacities > 0, ALPHA_MAX / opacities, torch.full_like(opacities, np.inf))
    t = torch.minimum(peak, room).clamp(min=1.0)  # [N]
    t = torch.where(torch.isfinite(t), t, torch.ones_like(t))  # non-finite rows are dropped later
    sh = sh / t[:, None, None]
    # Divide the whole colour 0.5 + Σ Y_k sh_k by t: the constant 0.5 lives in the DC band.
    sh[:, 0, :] += 0.5 * (1.0 / t[:, None] - 1.0) / SH_C0
    sh[:, 0, :] = sh[:, 0, :].clamp(-DC_BOUND, DC_BOUND)
    return sh, opacities * t
