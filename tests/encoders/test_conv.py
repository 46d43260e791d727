import pytest
import torch

from jepa_wms.encoders import ConvEncoder, Encoder


def test_tokens_shape_and_row_major_order():
    torch.manual_seed(0)
    enc = ConvEncoder().eval()
    assert isinstance(enc, Encoder) and enc.grid_size == (4, 4) and enc.num_tokens == 16
    x = torch.randn(2, 3, 32, 32)
    tokens = enc(x)
    assert tokens.shape == (2, 16, 64)
    # Token r·4 + c is the feature vector at grid cell (row r, col c) of the final map: row-major order.
    fmap = enc.head(enc.stages(x))
    assert fmap.shape == (2, 64, 4, 4)
    torch.testing.assert_close(tokens[:, 1 * 4 + 3], fmap[:, :, 1, 3])
    torch.testing.assert_close(tokens[:, 3 * 4 + 0], fmap[:, :, 3, 0])


def test_encode_frames_folds_time_into_batch():
    torch.manual_seed(0)
    enc = ConvEncoder().eval()
    pixels = torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8)
    out = enc.encode_frames(pixels)
    assert out.shape == (2, 3, 16, 64)
    torch.testing.assert_close(out[1, 2], enc(enc.preprocess(pixels[1, 2:3]))[0], atol=1e-5, rtol=1e-5)


def test_trainable_gets_gradients_frozen_does_not():
    pixels = torch.randint(0, 256, (1, 2, 32, 32, 3), dtype=torch.uint8)
    enc = ConvEncoder()
    enc.encode_frames(pixels).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    frozen = ConvEncoder(trainable=False)
    frozen.train()
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    assert not frozen.encode_frames(pixels).requires_grad


def test_size_mismatch_raises():
    with pytest.raises(ValueError, match="img_size 64 must equal grid_size 4"):
        ConvEncoder(img_size=64)
    with pytest.raises(ValueError, match=r"expected \(B, 3, 32, 32\)"):
        ConvEncoder()(torch.randn(1, 3, 16, 16))


def test_bf16_autocast():
    torch.manual_seed(0)
    enc = ConvEncoder().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.autocast("cpu", torch.bfloat16):
        out = enc(x)
    ref = enc(x)
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()
