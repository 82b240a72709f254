"""PSNR / SSIM with masks against the unmasked metrics on the cropped images."""

import torch

from splatnet.metrics import psnr, ssim
from splatnet.metrics.image import SSIM_WINDOW


def test_masked_ssim_is_ssim_of_the_windows_centred_in_the_mask():
    torch.manual_seed(0)
    a = torch.rand(2, 40, 50, 3)
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    b[:, 30:] = torch.rand_like(b[:, 30:])     # garbage below row 30, outside the mask
    k, r = 24, SSIM_WINDOW // 2
    mask = torch.zeros(2, 40, 50, 1, dtype=torch.bool)
    mask[:, :k] = True
    # windows centred on rows r..k-1 are exactly those of the image cut at row k + r
    torch.testing.assert_close(ssim(a, b, mask=mask), ssim(a[:, :k + r], b[:, :k + r]))
    torch.testing.assert_close(ssim(a, b, mask=torch.ones_like(mask)), ssim(a, b))
    torch.testing.assert_close(ssim(a, b, mask=mask[..., 0]), ssim(a[:, :k + r], b[:, :k + r]))


def test_masked_psnr_ignores_the_masked_out_pixels():
    a = torch.full((1, 8, 8, 3), 0.5)
    b = a.clone()
    b[:, :4] += 0.1
    b[:, 4:] = 1.0
    mask = torch.zeros(1, 8, 8, 1, dtype=torch.bool)
    mask[:, :4] = True
    torch.testing.assert_close(psnr(b, a, mask=mask), torch.tensor([20.0]))
