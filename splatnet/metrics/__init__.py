"""Image quality metrics shared by optimisation, evaluation and benchmarks: PSNR, SSIM and LPIPS.

Images are ``[..., H, W, 3]`` (channels last, like ``RenderOutput.rgb``) with values in
``[0, 1]``. Every function returns one value per image (shape ``[...]``); average them yourself so
that the averaging (per view, per clip) is visible where it happens.

SSIM is ``kornia.metrics.ssim`` with the usual constants (11-tap Gaussian window, σ = 1.5,
``c1 = 0.01²``, ``c2 = 0.03²``). As a *metric* it is averaged over the ``'valid'`` region (the
window never reaches outside the image, as in scikit-image); as a *loss* (``ssim_map`` with
``padding='same'``) it covers every pixel, as in the reference 3DGS training code.

LPIPS (v0.1, AlexNet or VGG16) is the module :class:`LPIPS`, defined in :mod:`splatnet.metrics.lpips`: it
needs weights from local files (``LPIPS.from_files(backbone, linear_layers)``, nothing is
downloaded), so it is built once and then called like the functions here: ``lpips(pred, target)``
gives ``[...]``.
"""

from splatnet.metrics.image import SSIM_WINDOW, mse, psnr, ssim, ssim_map
from splatnet.metrics.lpips import LPIPS

__all__ = ["LPIPS", "SSIM_WINDOW", "mse", "psnr", "ssim", "ssim_map"]
