"""Pixel decoder: shapes, argument checks, and that it learns to reproduce frames from tokens."""

import pytest
import torch

from jepa_wms.encoders import ConvEncoder, PixelDecoder


@pytest.mark.parametrize(("grid", "img", "stages"), [((1, 1), 64, 6), ((2, 2), 32, 4), ((4, 4), 16, 2)])
def test_output_shape_and_stages(grid, img, stages):
    dec = PixelDecoder(8, grid, img, [16, 8])
    out = dec(torch.randn(3, grid[0] * grid[1], 8))
    assert out.shape == (3, 3, img, img)
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in dec.stages) == stages
    widths = [m.out_channels for m in dec.stages if isinstance(m, torch.nn.ConvTranspose2d)]
    assert widths == [16] + [8] * (stages - 1)  # the last width repeats


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="power-of-two multiple"):
        PixelDecoder(8, (1, 1), 48, [8])
    with pytest.raises(ValueError, match="power-of-two multiple"):
        PixelDecoder(8, (2, 1), 32, [8])
    with pytest.raises(ValueError, match="non-empty"):
        PixelDecoder(8, (1, 1), 32, [])
    with pytest.raises(ValueError, match=r"expected \(B, 4, 8\) tokens"):
        PixelDecoder(8, (2, 2), 16, [8])(torch.randn(2, 1, 8))


def test_autoencoder_learns_to_place_a_square():
    """Encoder + decoder trained on frames with a bright square at one of 4 places: the decoding must put the
    square where the frame has it (an untrained decoder cannot), so the tokens carry its position."""
    torch.manual_seed(0)
    frames = torch.zeros(4, 16, 16, 3, dtype=torch.uint8)
    for k, (r, c) in enumerate([(0, 0), (0, 8), (8, 0), (8, 8)]):
        frames[k, r : r + 8, c : c + 8] = 255
    enc = ConvEncoder(img_size=16, channels=[8, 16], embed_dim=8, grid_size=4)
    dec = PixelDecoder(8, enc.grid_size, 16, [16, 8])
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-2)
    target = enc.preprocess(frames)
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(dec(enc(target)), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    recon = dec(enc(target)).detach()
    assert loss.item() < 0.05  # the targets are ±1, their variance 1
    for k in range(4):  # each decoding is closest to its own frame
        dists = ((recon[k] - target) ** 2).mean(dim=(1, 2, 3))
        assert int(dists.argmin()) == k
