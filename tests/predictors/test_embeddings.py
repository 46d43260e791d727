import pytest
import torch

from jepa_wms.predictors import ProprioDecoder, ProprioEncoder


def test_per_step_linear_maps_with_proj_names():
    torch.manual_seed(0)
    enc, dec = ProprioEncoder(3, 16), ProprioDecoder(16, 3)
    assert {n for n, _ in enc.named_parameters()} == {"proj.weight", "proj.bias"}
    assert enc.proj.weight.shape == (16, 3) and dec.proj.weight.shape == (3, 16)
    x = torch.randn(2, 5, 3)
    emb = enc(x)
    assert emb.shape == (2, 5, 16)
    # Time steps are processed independently: the same linear map on every (B, T) entry.
    torch.testing.assert_close(emb[1, 3], enc.proj.weight @ x[1, 3] + enc.proj.bias)
    assert dec(emb).shape == (2, 5, 3)


def test_wrong_width_raises():
    with pytest.raises(ValueError, match="ProprioEncoder: expected last dim 3"):
        ProprioEncoder(3, 8)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="dims must be >= 1"):
        ProprioDecoder(0, 2)
