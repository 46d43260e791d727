import pytest
import torch

from jepa_wms.encoders import sigreg, vicreg


def _gaussian(num=4096, dim=16, seed=0):
    return torch.randn(num, dim, generator=torch.Generator().manual_seed(seed))


def test_vicreg_hand_computed():
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    loss, stats = vicreg(z, var_weight=2.0, cov_weight=1.0)
    # dim 0: var 2 -> std > 1, no penalty; dim 1: var 0 -> std sqrt(1e-4) = 0.01 -> 0.99; no covariance.
    torch.testing.assert_close(loss, torch.tensor(2.0 * 0.99 / 2))
    assert stats["vicreg_cov"] == 0 and stats["latent_std"] == pytest.approx(2**0.5 / 2)


def test_vicreg_collapsed_is_large_gaussian_is_near_zero():
    gauss_loss, gauss = vicreg(_gaussian(), var_weight=10.0, cov_weight=1.0)
    collapsed = torch.ones(4096, 16) + 1e-3 * _gaussian()
    coll_loss, coll = vicreg(collapsed, var_weight=10.0, cov_weight=1.0)
    assert gauss_loss < 0.15 and coll_loss > 9.0
    assert gauss["latent_std"] == pytest.approx(1.0, abs=0.03) and coll["latent_std"] < 2e-3
    # Correlated dimensions pay the covariance term even when their variance is fine.
    g = _gaussian()
    correlated = torch.cat([g[:, :8], g[:, :8]], dim=1)
    assert vicreg(correlated, 0.0, 1.0)[1]["vicreg_cov"] > 0.4


def test_vicreg_gradient_spreads_a_collapsed_batch():
    z = (1e-2 * _gaussian(256, 8)).requires_grad_(True)
    loss, _ = vicreg(z, var_weight=1.0, cov_weight=0.0)
    loss.backward()
    with torch.no_grad():
        stepped = z - 0.1 * z.grad * z.shape[0]
    assert stepped.std(0).mean() > z.std(0).mean()


def test_sigreg_gaussian_scores_lowest_and_near_its_null_expectation():
    gen = torch.Generator().manual_seed(0)
    gauss, stats = sigreg(_gaussian(), generator=gen)
    # Under N(0, 1): E[M |phi - phi0|^2] = 1 - exp(-t^2), so the statistic's mean is
    # 2 * int_0^3 (1 - exp(-t^2)) exp(-t^2/2) dt ~= 1.05, whatever the batch size.
    assert 0.6 < gauss.item() < 1.6 and stats["latent_std"] == pytest.approx(1.0, abs=0.03)
    collapsed = sigreg(0.01 * _gaussian(seed=1), generator=torch.Generator().manual_seed(0))[0]
    anisotropic = sigreg(_gaussian(seed=2) * torch.linspace(0.2, 3.0, 16), generator=torch.Generator().manual_seed(0))[
        0
    ]
    shifted = sigreg(_gaussian(seed=3) + 1.0, generator=torch.Generator().manual_seed(0))[0]
    assert collapsed > 50 * gauss and anisotropic > 10 * gauss and shifted > 10 * gauss


def test_sigreg_is_reproducible_with_a_generator_and_runs_under_autocast():
    z = _gaussian(512, 8)
    a = sigreg(z, 64, torch.Generator().manual_seed(5))[0]
    b = sigreg(z, 64, torch.Generator().manual_seed(5))[0]
    assert torch.equal(a, b)
    with torch.autocast("cpu", torch.bfloat16):
        c, _ = sigreg(z.bfloat16(), 64, torch.Generator().manual_seed(5))
        v, _ = vicreg(z.bfloat16(), 1.0, 1.0)
    assert c.dtype == torch.float32 and v.dtype == torch.float32
    assert c.item() == pytest.approx(a.item(), rel=0.1)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="at least 2 latent vectors"):
        vicreg(torch.randn(1, 4), 1.0, 1.0)
    with pytest.raises(ValueError, match=r"\(M, D\)"):
        sigreg(torch.randn(5))
    with pytest.raises(ValueError, match="num_projections"):
        sigreg(torch.randn(4, 2), num_projections=0)
