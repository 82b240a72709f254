"""Autograd-aware wrappers over the compiled renderer ops ``torch.ops.splatnet.*``.

Two stages, as in gsplat, so that the gradient of the 2D means (densification) is visible:

- :func:`project` → ``torch.ops.splatnet.project_forward`` / ``project_backward``
- :func:`rasterize` → ``torch.ops.splatnet.rasterize_forward`` / ``rasterize_backward``

The same schemas have a CPU implementation (``csrc/cpu/``) and, in CUDA builds, a CUDA one
(``csrc/cuda/``); the dispatcher picks by the tensors' device. Each op has a fake (meta)
implementation and its backward registered with :func:`torch.library.register_autograd`, so a
``torch.compile``d caller keeps one graph. The ops take float32 only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from splatnet import _ext
from splatnet.errors import ValidationError

_REGISTERED = False


def _require(*tensors: Tensor) -> None:
    """Raise BackendUnavailableError (naming the fix) unless the ops can run on these tensors."""
    if torch.compiler.is_compiling():
        # Checked when the caller ran eagerly; tracing the cached checks would only add guards.
        return
    _ext.require_cpu()
    if any(t.is_cuda for t in tensors):
        _ext.require_cuda()
    _register()


def _check_float32(op: str, **tensors: Tensor) -> None:
    for name, t in tensors.items():
        if t.dtype != torch.float32:
            raise ValidationError(
                f"{op}: {name} must be float32 for the compiled kernels, got {t.dtype} "
                "(use backend='torch' for float64)"
            )


def project(
    means: Tensor,  # [B, N, 3]
    quats: Tensor,  # [B, N, 4] w, x, y, z (need not be unit)
    scales: Tensor,  # [B, N, 3]
    opacities: Tensor,  # [B, N]
    sh: Tensor,  # [B, N, K, 3]
    viewmats: Tensor,  # [B, C, 4, 4] world → camera, OpenCV
    Ks: Tensor,  # [B, C, 3, 3] pixels
    width: int,
    height: int,
    sh_degree: int,
    near: float = 0.01,
    far: float = 1e10,
    antialiased: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """EWA projection + SH colour.

    Returns ``(means2d [B,C,N,2], conics [B,C,N,3], depths [B,C,N], radii [B,C,N,2] int32,
    opac [B,C,N], colors [B,C,N,3])``; see ``splatnet/rendering/reference.py`` for the semantics.
    Differentiable w.r.t. means, quats, scales, opacities and sh (not the cameras).
    """
    _require(means, viewmats)
    _check_float32("project", means=means, quats=quats, scales=scales, opacities=opacities, sh=sh,
                   viewmats=viewmats, Ks=Ks)
    return torch.ops.splatnet.project_forward(
        means.contiguous(), quats.contiguous(), scales.contiguous(), opacities.contiguous(),
        sh.contiguous(), viewmats.contiguous(), Ks.contiguous(), int(width), int(height),
        int(sh_degree), float(near), float(far), bool(antialiased),
    )


def rasterize(
    means2d: Tensor,  # [B, C, N, 2]
    conics: Tensor,  # [B, C, N, 3]
    values: Tensor,  # [B, C, N, Ch]
    opac: Tensor,  # [B, C, N]
    depths: Tensor,  # [B, C, N]
    radii: Tensor,  # [B, C, N, 2] int32
    width: int,
    height: int,
    tile_size: int = 16,
) -> tuple[Tensor, Tensor]:
    """Tile-binned, depth-sorted front-to-back blending: ``(image [B,C,H,W,Ch], alpha [B,C,H,W,1])``.

    Differentiable w.r.t. means2d, conics, values and opac.
    """
    _require(means2d)
    _check_float32("rasterize", means2d=means2d, conics=conics, values=values, opac=opac,
                   depths=depths)
    if radii.dtype != torch.int32:
        raise ValidationError(f"rasterize: radii must be int32, got {radii.dtype}")
    out = torch.ops.splatnet.rasterize_forward(
        means2d.contiguous(), conics.contiguous(), values.contiguous(), opac.contiguous(),
        depths.contiguous(), radii.contiguous(), int(width), int(height), int(tile_size),
    )
    return out[0], out[1]


# ----------------------------------------------------------------------------- registration
def _meta(t: Tensor) -> tuple:
    return (t.shape, t.dtype, t.device)


def _zeros_if_none(g: Tensor | None, meta: tuple) -> Tensor:
    shape, dtype, device = meta
    return torch.zeros(shape, dtype=dtype, device=device) if g is None else g.contiguous()


def _project_setup(ctx, inputs, output) -> None:
    means, quats, scales, opacities, sh, viewmats, Ks, width, height, deg, near, far, aa = inputs
    ctx.save_for_backward(means, quats, scales, opacities, sh, viewmats, Ks, output[3])
    ctx.args = (width, height, deg, aa)
    ctx.out_like = tuple(_meta(output[i]) for i in (0, 1, 2, 4, 5))


def _project_backward(ctx, v_means2d, v_conics, v_depths, v_radii, v_opac, v_colors):
    means, quats, scales, opacities, sh, viewmats, Ks, radii = ctx.saved_tensors
    width, height, deg, aa = ctx.args
    m2d, con, dep, op, col = ctx.out_like
    grads = torch.ops.splatnet.project_backward(
        means, quats, scales, opacities, sh, viewmats, Ks, width, height, deg, aa, radii,
        _zeros_if_none(v_means2d, m2d), _zeros_if_none(v_conics, con),
        _zeros_if_none(v_depths, dep), _zeros_if_none(v_opac, op), _zeros_if_none(v_colors, col),
    )
    return (*grads, None, None, None, None, None, None, None, None)


def _rasterize_setup(ctx, inputs, output) -> None:
    means2d, conics, values, opac, depths, radii, width, height, tile_size = inputs
    _, _, tile_offsets, flat_ids, last_ids, final_t = output
    ctx.save_for_backward(means2d, conics, values, opac, radii, tile_offsets, flat_ids, last_ids,
                          final_t)
    ctx.args = (width, height, tile_size)
    ctx.out_like = (_meta(output[0]), _meta(output[1]))


def _rasterize_backward(ctx, v_image, v_alpha, *_unused):
    means2d, conics, values, opac, radii, tile_offsets, flat_ids, last_ids, final_t = (
        ctx.saved_tensors
    )
    width, height, tile_size = ctx.args
    image, alpha = ctx.out_like
    grads = torch.ops.splatnet.rasterize_backward(
        means2d, conics, values, opac, radii, width, height, tile_size, tile_offsets, flat_ids,
        last_ids, final_t, _zeros_if_none(v_image, image), _zeros_if_none(v_alpha, alpha),
    )
    # means2d, conics, values, opac, then depths, radii, width, height, tile_size.
    return (*grads, None, None, None, None, None)


def _project_fake(means, quats, scales, opacities, sh, viewmats, Ks, width, height, sh_degree,
                  near, far, antialiased):
    B, N = means.shape[:2]
    C = viewmats.shape[1]
    f = means.new_empty
    return (f(B, C, N, 2), f(B, C, N, 3), f(B, C, N), f(B, C, N, 2, dtype=torch.int32),
            f(B, C, N), f(B, C, N, 3))


def _project_backward_fake(means, quats, scales, opacities, sh, viewmats, Ks, width, height,
                           sh_degree, antialiased, radii, v_means2d, v_conics, v_depths, v_opac,
                           v_colors):
    return (torch.empty_like(means), torch.empty_like(quats), torch.empty_like(scales),
            torch.empty_like(opacities), torch.empty_like(sh))


def _rasterize_fake(means2d, conics, values, opac, depths, radii, width, height, tile_size):
    B, C, N = opac.shape
    ch = values.shape[-1]
    tiles = -(-width // tile_size) * -(-height // tile_size)
    m = torch.library.get_ctx().new_dynamic_size()
    f = means2d.new_empty
    return (f(B, C, height, width, ch), f(B, C, height, width, 1),
            f(B * C * tiles + 1, dtype=torch.int32), f(m, dtype=torch.int32),
            f(B, C, height, width, dtype=torch.int32), f(B, C, height, width))


def _rasterize_backward_fake(means2d, conics, values, opac, radii, width, height, tile_size,
                             tile_offsets, flat_ids, last_ids, final_t, v_image, v_alpha):
    return (torch.empty_like(means2d), torch.empty_like(conics), torch.empty_like(values),
            torch.empty_like(opac))


def _register() -> None:
    """Attach autograd and fake implementations to the ops (once, after the extension loaded)."""
    global _REGISTERED
    if _REGISTERED:
        return
    lib = torch.library
    lib.register_fake("splatnet::project_forward")(_project_fake)
    lib.register_fake("splatnet::project_backward")(_project_backward_fake)
    lib.register_fake("splatnet::rasterize_forward")(_rasterize_fake)
    lib.register_fake("splatnet::rasterize_backward")(_rasterize_backward_fake)
    lib.register_autograd("splatnet::project_forward", _project_backward,
                          setup_context=_project_setup)
    lib.register_autograd("splatnet::rasterize_forward", _rasterize_backward,
                          setup_context=_rasterize_setup)
    _REGISTERED = True


try:  # register at import when the extension is there; otherwise the first call raises
    _ext.require_cpu()
except Exception:  # noqa: BLE001 - a missing build is reported by _require() at call time
    pass
else:
    _register()
