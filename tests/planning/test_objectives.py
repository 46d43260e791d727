"""Latent goal costs: hand-computed L1/L2 values, the proprio weight, broadcasting over candidates, errors."""

import pytest
import torch

from jepa_wms.planning import VALID_KINDS, goal_cost


def example():
    """B=1 episode, S=2 candidates, N=2 tokens, D=2 dims, P=3 proprio dims."""
    goal_visual = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (1, 2, 2)
    pred_visual = torch.stack(
        [
            goal_visual[0] + torch.tensor([[1.0, -1.0], [0.0, 2.0]]),  # diffs 1, -1, 0, 2
            goal_visual[0],  # exact match
        ]
    ).unsqueeze(0)  # (1, 2, 2, 2)
    goal_proprio = torch.tensor([[0.0, 1.0, 2.0]])  # (1, 3)
    pred_proprio = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 1.0, -1.0]]])  # diffs (0,0,0) and (3,0,-3)
    return pred_visual, goal_visual, pred_proprio, goal_proprio


def test_l2_is_mean_squared_error_without_square_root_plus_alpha_proprio():
    pv, gv, pp, gp = example()
    cost = goal_cost(pv, gv, pp, gp, alpha=0.1, kind="L2")
    # Candidate 0: visual (1 + 1 + 0 + 4) / 4 = 1.5, proprio 0.
    # Candidate 1: visual 0, proprio (9 + 0 + 9) / 3 = 6.
    torch.testing.assert_close(cost, torch.tensor([[1.5, 0.1 * 6.0]]))


def test_l1_is_mean_absolute_error_plus_alpha_proprio():
    pv, gv, pp, gp = example()
    cost = goal_cost(pv, gv, pp, gp, alpha=0.5, kind="L1")
    # Candidate 0: (1 + 1 + 0 + 2) / 4 = 1.0.  Candidate 1: proprio (3 + 0 + 3) / 3 = 2.
    torch.testing.assert_close(cost, torch.tensor([[1.0, 0.5 * 2.0]]))


def test_alpha_zero_ignores_proprio_even_when_missing():
    pv, gv, pp, gp = example()
    torch.testing.assert_close(goal_cost(pv, gv, alpha=0.0), goal_cost(pv, gv, pp, gp, alpha=0.0))
    torch.testing.assert_close(goal_cost(pv, gv), torch.tensor([[1.5, 0.0]]))


def test_goal_broadcasts_over_candidates_and_episodes_stay_separate():
    g = torch.Generator().manual_seed(0)
    B, S, N, D, P = 3, 5, 4, 6, 2
    pv, gv = torch.randn(B, S, N, D, generator=g), torch.randn(B, N, D, generator=g)
    pp, gp = torch.randn(B, S, P, generator=g), torch.randn(B, P, generator=g)
    cost = goal_cost(pv, gv, pp, gp, alpha=0.1, kind="L2")
    assert cost.shape == (B, S)
    for b in range(B):
        for s in range(S):
            expected = ((pv[b, s] - gv[b]) ** 2).mean() + 0.1 * ((pp[b, s] - gp[b]) ** 2).mean()
            torch.testing.assert_close(cost[b, s], expected)


def test_cost_is_differentiable_for_gradient_planning():
    pv, gv, pp, gp = example()
    pv = pv.clone().requires_grad_(True)
    goal_cost(pv, gv, pp, gp, alpha=0.1).sum().backward()
    # d/dpred of mean((pred - goal)^2) over 4 elements = 2 * diff / 4.
    torch.testing.assert_close(pv.grad[0, 0], 0.5 * (pv[0, 0] - gv[0]).detach())


def test_unknown_kind_lists_the_valid_ones():
    pv, gv, _, _ = example()
    with pytest.raises(ValueError, match="'cosine'.*'L1', 'L2'"):
        goal_cost(pv, gv, kind="cosine")
    assert VALID_KINDS == ("L1", "L2")


def test_missing_proprio_with_positive_alpha_is_an_error():
    pv, gv, pp, _ = example()
    with pytest.raises(ValueError, match="goal_proprio is None"):
        goal_cost(pv, gv, pp, None, alpha=0.1)


@pytest.mark.parametrize(
    ("pred_shape", "goal_shape"),
    [((1, 2, 2, 2), (1, 2, 3)), ((2, 2, 2, 2), (1, 2, 2)), ((2, 2), (2,))],
)
def test_mismatched_visual_shapes_are_named(pred_shape, goal_shape):
    with pytest.raises(ValueError, match=r"pred_visual has shape"):
        goal_cost(torch.zeros(pred_shape), torch.zeros(goal_shape))


def test_negative_alpha_is_rejected():
    pv, gv, pp, gp = example()
    with pytest.raises(ValueError, match="alpha"):
        goal_cost(pv, gv, pp, gp, alpha=-1.0)
