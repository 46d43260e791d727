import pytest
import torch

from jepa_wms.encoders import ConvEncoder


def test_preprocess_scales_normalises_and_resizes():
    norm = dict(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    enc = ConvEncoder(img_size=16, channels=(8, 8), grid_size=4, **norm)
    pixels = torch.full((2, 3, 64, 64, 3), 255, dtype=torch.uint8)
    pixels[..., 1] = 0
    x = enc.preprocess(pixels)
    assert x.shape == (2, 3, 3, 16, 16) and x.dtype == torch.float32
    # (1 - 0.5) / 0.5 = 1, (0 - 0.25) / 0.25 = -1, (1 - 0) / 1 = 1; a constant image stays constant.
    torch.testing.assert_close(x[:, :, 0], torch.ones(2, 3, 16, 16))
    torch.testing.assert_close(x[:, :, 1], -torch.ones(2, 3, 16, 16))
    torch.testing.assert_close(x[:, :, 2], torch.ones(2, 3, 16, 16))


def test_resize_is_antialiased_bilinear():
    enc = ConvEncoder(img_size=16, channels=(8, 8), grid_size=4)
    checker = (torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2 * 255
    pixels = checker.to(torch.uint8)[..., None].expand(64, 64, 3).contiguous()
    x = enc.preprocess(pixels)
    # A 1-pixel checkerboard averages to mid-grey (0.5 -> 0 after normalising); without antialiasing the
    # bilinear taps would alias it to a strong pattern.
    assert x.abs().max() < 0.05


def test_non_square_frames_are_centre_cropped():
    enc = ConvEncoder(img_size=16, channels=(8, 8), grid_size=4)
    pixels = torch.full((32, 48, 3), 100, dtype=torch.uint8)
    pixels[:, :8] = 0
    pixels[:, -8:] = 255
    x = enc.preprocess(pixels)
    torch.testing.assert_close(x, torch.full((3, 16, 16), 100 / 255 * 2 - 1))


def test_bad_pixels_raise():
    enc = ConvEncoder()
    with pytest.raises(ValueError, match="expected uint8 frames"):
        enc.preprocess(torch.zeros(2, 32, 32, 3))
    with pytest.raises(ValueError, match="expected uint8 frames"):
        enc.preprocess(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"expected \(B, T, H, W, 3\)"):
        enc.encode_frames(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))
