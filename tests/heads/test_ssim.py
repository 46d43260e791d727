"""SSIM in plain torch, pinned to values computed by hand."""

from __future__ import annotations

import pytest
import torch

from jepa_wms.heads import ssim


def test_ssim_of_an_image_with_itself_is_one():
    x = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)


def test_ssim_of_two_flat_images():
    # No variance: SSIM = (2 a b + C1) / (a² + b² + C1), with C1 = 0.01².
    a, b = 0.2, 0.6
    x, y = torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b)
    assert float(ssim(x, y)) == pytest.approx((2 * a * b + 1e-4) / (a * a + b * b + 1e-4), rel=1e-5)


def test_ssim_of_an_inverted_pattern():
    # Equal means and variances, opposite structure: a constant ±0.5 checkerboard around 0.5 has, in any window,
    # mean 0.5 and variance ≈ 0.25 both, covariance ≈ −0.25: SSIM ≈ (−0.5 + C2) / (0.5 + C2) near −1.
    board = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2
    x = board.float().expand(1, 1, 16, 16)
    s = float(ssim(x, 1 - x))
    assert -1.0 < s < -0.95
    assert float(ssim(x, 1 - x)) == pytest.approx(float(ssim(1 - x, x)))


def test_ssim_window_shrinks_for_small_images():
    x = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="ssim: expected two"):
        ssim(x, x[:, :2])
