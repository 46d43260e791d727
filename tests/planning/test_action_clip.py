"""``plan.action_clip``: a number (± data std) or a list of per-dim bounds in the data's own units."""

from __future__ import annotations

import pytest
import torch

from jepa_wms.config import ConfigError, load_config
from jepa_wms.planning.registry import action_bounds, build_planner
from tests.planning.analytic import gens

DROID = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.75]


def test_the_droid_override_parses_as_a_list():
    plan = load_config("wall", ["plan.action_clip=[0.1,0.1,0.1,0.1,0.1,0.1,0.75]"]).plan
    assert plan.action_clip == DROID and all(isinstance(v, float) for v in plan.action_clip)
    # A whole number is still a float, as before.
    assert load_config("wall", ["plan.action_clip=2"]).plan.action_clip == 2.0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[0.1,-0.1,0.1]", "config key 'plan.action_clip[1]' is -0.1; expected >= 0"),
        ("-1", "config key 'plan.action_clip' is -1.0; expected >= 0"),
        ("[]", "config key 'plan.action_clip' is []"),
        ("[0.1,abc]", "config key 'plan.action_clip[1]' must be a number"),
        ("true", "config key 'plan.action_clip' must be a number"),
    ],
)
def test_bad_clips_are_refused_naming_the_key(value, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config("wall", [f"plan.action_clip={value}"])


def test_a_list_of_the_wrong_length_names_the_key_and_the_expected_length():
    plan = load_config("wall", ["plan.action_clip=[0.1,0.1,0.75]"]).plan
    stats = (torch.zeros(7), torch.ones(7), 1)
    with pytest.raises(ConfigError, match=r"'plan.action_clip' has 3 bounds; expected 7"):
        build_planner(plan, stats)
    with pytest.raises(ConfigError, match=r"expected 2, .* \(or 10, one per dim of a 5-step model action\)"):
        action_bounds([0.1] * 3, (torch.zeros(2), torch.ones(2), 5))


def test_a_number_is_in_data_std_and_a_list_in_raw_units():
    assert action_bounds(1.5) == (-1.5, 1.5)
    assert action_bounds(0.0) == (None, None)
    mean, std = torch.tensor([0.01, -0.02]), torch.tensor([0.05, 0.1])
    low, high = action_bounds([0.1, 0.2], (mean, std, 2))
    # |raw| <= c ⇔ (−c − mean)/std <= normalised <= (c − mean)/std, for each of the 2 frameskip steps.
    expect_low = ((-torch.tensor([0.1, 0.2]) - mean) / std).repeat(2)
    expect_high = ((torch.tensor([0.1, 0.2]) - mean) / std).repeat(2)
    torch.testing.assert_close(torch.tensor(low), expect_low.float())
    torch.testing.assert_close(torch.tensor(high), expect_high.float())
    # Identity stats (the released DROID models): the bounds are the list itself.
    assert action_bounds(DROID, (torch.zeros(7), torch.ones(7), 1))[1] == pytest.approx(tuple(DROID))


def test_cem_samples_honour_the_per_dim_clip():
    plan = load_config(
        "wall",
        [
            "plan.action_clip=[0.1,0.1,0.1,0.1,0.1,0.1,0.75]",
            "plan.num_samples=64",
            "plan.iterations=4",
            "plan.init_std=50",
        ],  # 50 std = 1 raw unit: samples reach every bound
    ).plan
    mean, std = torch.full((7,), 0.01), torch.full((7,), 0.02)
    planner = build_planner(plan, (mean, std, 1))
    seen = []
    target = torch.full((2, 3, 7), 100.0)  # far outside the box: the optimum sits on the bounds

    def cost(actions: torch.Tensor) -> torch.Tensor:
        seen.append(actions.clone())
        return ((actions - target.unsqueeze(1)) ** 2).sum(dim=(2, 3))

    result = planner.plan(cost, 2, 3, 7, gens(0, 1))
    raw = torch.cat([a.flatten(0, 2) for a in seen]) * std + mean  # every candidate, in raw units
    bound = torch.tensor(DROID)
    assert (raw.abs() <= bound + 1e-5).all()
    assert torch.allclose(raw.amax(0), bound, atol=1e-5)  # the clip binds in every dim
    assert ((result.actions * std + mean).abs() <= bound + 1e-5).all()  # a mean of clipped elites
