"""Keypoint encoder and decoder: the soft-argmax reads positions in the right order, blobs sit where asked, the
autoencoder learns to track a moving object linearly, and a pretrained one freezes into a world model."""

import numpy as np
import pytest
import torch
from torch import nn

from jepa_wms.checkpoint import load_checkpoint, save_checkpoint
from jepa_wms.config import load_config
from jepa_wms.encoders import KeypointDecoder, KeypointEncoder, build_encoder
from jepa_wms.encoders.keypoints import render_keypoints
from jepa_wms.training.pretrain import build_autoencoder, pretrain
from jepa_wms.world_model import build_world_model
from tests.conftest import TINY


class _Peak(nn.Module):
    """Feature map with one huge value at (row, col) of an (h, w) grid, in every channel."""

    def __init__(self, row: int, col: int, side: int) -> None:
        super().__init__()
        self.row, self.col, self.side = row, col, side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(x), 4, self.side, self.side)
        out[:, :, self.row, self.col] = 100.0
        return out


def test_soft_argmax_returns_column_then_row_of_the_peak():
    enc = KeypointEncoder(img_size=16, channels=(4,), embed_dim=2)
    enc.stages = _Peak(row=1, col=6, side=8)  # half of 16 px: cells of 2 px, centres at (i + 0.5) / 4 - 1
    with torch.no_grad():
        enc.head.weight.fill_(1.0)
        enc.head.bias.zero_()
        xy = enc(torch.zeros(3, 3, 16, 16))
    assert xy.shape == (3, 1, 2)
    torch.testing.assert_close(xy[0, 0], torch.tensor([(6 + 0.5) / 4 - 1, (1 + 0.5) / 4 - 1]))


def test_a_uniform_map_puts_every_keypoint_at_the_centre():
    enc = KeypointEncoder(img_size=16, channels=(4, 4), embed_dim=6)
    with torch.no_grad():
        enc.head.weight.zero_()
        enc.head.bias.zero_()
        xy = enc(torch.randn(2, 3, 16, 16))
    torch.testing.assert_close(xy, torch.zeros(2, 1, 6))


def test_render_keypoints_peaks_at_x_column_y_row():
    # Cell centres of an 8-cell axis are at (i + 0.5) / 4 - 1; put the point on column 5, row 2.
    point = torch.tensor([[(5 + 0.5) / 4 - 1, (2 + 0.5) / 4 - 1]])
    blobs = render_keypoints(point, side=8, sigma=0.2)
    assert blobs.shape == (1, 1, 8, 8)
    assert torch.argmax(blobs[0, 0]).item() == 2 * 8 + 5
    assert blobs[0, 0, 2, 5].item() == pytest.approx(1.0)
    assert blobs[0, 0, 2, 6].item() == pytest.approx(np.exp(-(0.25**2) / (2 * 0.2**2)), rel=1e-5)


def test_decoder_output_depends_on_every_keypoint_position():
    dec = KeypointDecoder(embed_dim=4, img_size=16, channels=[8, 8, 4])
    points = torch.zeros(2, 1, 4, requires_grad=True)
    out = dec(points)
    assert out.shape == (2, 3, 16, 16)
    out.square().sum().backward()
    assert (points.grad.abs() > 0).all()


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: KeypointEncoder(img_size=16, channels=(4,), embed_dim=3), "even"),
        (lambda: KeypointEncoder(img_size=16, channels=(), embed_dim=4), "channels"),
        (lambda: KeypointDecoder(embed_dim=4, img_size=18, channels=[4]), "divisible by 4"),
    ],
)
def test_bad_shapes_are_refused(make, needle):
    with pytest.raises(ValueError, match=needle):
        make()


def test_wrong_input_shapes_name_what_was_expected():
    with pytest.raises(ValueError, match=r"expected \(B, 3, 16, 16\)"):
        KeypointEncoder(img_size=16, channels=(4,), embed_dim=4)(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"expected \(B, 1, 4\) keypoints"):
        KeypointDecoder(embed_dim=4, img_size=16, channels=[4])(torch.zeros(1, 2, 4))


def test_registry_builds_keypoints_with_one_token_only():
    cfg = load_config("pusht_keypoints_encoder").model.encoder
    enc = build_encoder(cfg)
    assert isinstance(enc, KeypointEncoder) and enc.num_keypoints == 16 and enc.num_tokens == 1
    with pytest.raises(ValueError, match="grid_size=1"):
        build_encoder(load_config("pusht_keypoints_encoder", ["model.encoder.grid_size=2"]).model.encoder)


def _dot_frames(positions: torch.Tensor, side: int) -> torch.Tensor:
    """A dark disc of radius 3 px at each (x, y) in [-1, 1] on a white frame, normalised like the encoder."""
    grid = (torch.arange(side) + 0.5) * (2.0 / side) - 1.0
    dx = grid[None, None, :] - positions[:, 0, None, None]  # along columns
    dy = grid[None, :, None] - positions[:, 1, None, None]  # along rows
    dist2 = dx**2 + dy**2
    dot = (dist2 < (6.0 / side) ** 2).float()
    return (1.0 - 2.0 * dot)[:, None].expand(-1, 3, -1, -1)


def test_autoencoder_learns_keypoints_linear_in_the_object_position():
    """Trained only to redraw frames of a moving disc, the keypoints must follow it: a linear read-out of them gives
    its position to a quarter pixel (an untrained encoder's keypoints: 0.6 px)."""
    torch.manual_seed(0)
    enc = KeypointEncoder(img_size=32, channels=(8, 8), embed_dim=8)
    dec = KeypointDecoder(embed_dim=8, img_size=32, channels=[16, 8])
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-3)
    test_pos = torch.rand(256, 2) * 1.6 - 0.8
    test_frames = _dot_frames(test_pos, 32)

    def probe_r2() -> float:
        with torch.no_grad():
            feats = torch.cat([enc(test_frames)[:, 0], torch.ones(256, 1)], dim=1)
        coef = torch.linalg.lstsq(feats[:192], test_pos[:192]).solution
        resid = test_pos[192:] - feats[192:] @ coef
        return float(resid.square().mean().sqrt() * 16)  # RMS error in pixels of the 32-px frame

    before = probe_r2()
    for _ in range(150):
        frames = _dot_frames(torch.rand(64, 2) * 1.6 - 0.8, 32)
        loss = (dec(enc(frames)) - frames).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = probe_r2()
    assert before > 0.4 and after < 0.25, (before, after)


def test_pretrained_keypoint_encoder_freezes_into_the_pusht_keypoints_preset(tiny_dataset, tmp_path):
    torch.set_num_threads(1)
    overrides = [
        *TINY,
        "model.encoder.type=keypoints",
        "model.encoder.channels=[4]",
        "model.encoder.grid_size=1",
        "model.pixel_decoder=[8, 4]",
        "loss.regularizer=none",
        "train.epochs=1",
    ]
    ckpt_path = pretrain(load_config("wall", overrides), tiny_dataset.parent, tmp_path / "kp", show_progress=False)
    ckpt = load_checkpoint(ckpt_path)
    assert {k.split(".")[0] for k in ckpt["model"]} == {"encoder", "pixel_decoder"}
    # The preset's shapes: re-save a full-size (untrained) keypoint autoencoder and freeze it under the predictor.
    source = load_config("pusht_keypoints_encoder")
    autoencoder = build_autoencoder(source)
    path = tmp_path / "enc.pt"
    save_checkpoint(
        path, {"config": source.to_dict(), "model": autoencoder.state_dict(), "objective": "pretrain_encoder"}
    )
    cfg = load_config("pusht_keypoints", [f"model.encoder.weights={path}"])
    model = build_world_model(cfg.model, raw_action_dim=2, proprio_dim=4, frameskip=cfg.data.frameskip)
    assert isinstance(model.encoder, KeypointEncoder) and not model.encoder.trainable
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, autoencoder.encoder.state_dict()[k]), k
