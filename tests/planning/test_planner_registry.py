"""`build_planner`: every `plan.planner` name builds its planner with the shared budget, the action clip and its
own keys; an unknown name is an error, never a fallback; the planners are frozen settings objects."""

import dataclasses

import pytest
import torch

from jepa_wms.config import load_config
from jepa_wms.planning import CEMPlanner, GradientPlanner, ICEMPlanner, MPPIPlanner, NevergradPlanner
from jepa_wms.planning.registry import PLANNERS, build_planner


@pytest.mark.parametrize(
    ("name", "cls", "extra"),
    [
        ("cem", CEMPlanner, {"num_elites": 7}),
        ("mppi", MPPIPlanner, {"temperature": 0.25}),
        ("gd", GradientPlanner, {"lr": 0.5, "action_noise": 0.01, "optimizer": "sgd"}),
        ("adam", GradientPlanner, {"lr": 0.5, "action_noise": 0.01, "optimizer": "adam"}),
    ],
)
def test_build_planner_passes_budget_clip_and_own_settings(name, cls, extra):
    overrides = [f"plan.planner={name}", "plan.num_samples=12", "plan.iterations=5", "plan.action_clip=1.5"]
    overrides += [f"plan.{k}={v}" for k, v in extra.items() if k != "optimizer"]
    planner = build_planner(load_config("wall", overrides).plan)
    assert type(planner) is cls
    assert (planner.num_samples, planner.iterations) == (12, 5)
    assert (planner.action_low, planner.action_high) == (-1.5, 1.5)
    for key, value in extra.items():
        assert getattr(planner, key) == value


def test_action_clip_zero_means_unbounded():
    planner = build_planner(load_config("wall", ["plan.action_clip=0"]).plan)
    assert (planner.action_low, planner.action_high) == (None, None)


def test_an_unknown_name_is_an_error_that_lists_the_planners():
    plan = dataclasses.replace(load_config("wall").plan, planner="ilqr")
    with pytest.raises(ValueError, match="'ilqr'.*cem, mppi, gd, adam, nevergrad"):
        build_planner(plan)


CLASSES = {
    "cem": CEMPlanner,
    "mppi": MPPIPlanner,
    "gd": GradientPlanner,
    "adam": GradientPlanner,
    "nevergrad": NevergradPlanner,
    "icem": ICEMPlanner,
}


@pytest.mark.parametrize("name", PLANNERS)
def test_every_config_choice_builds_its_planner(name):
    if name == "nevergrad":
        pytest.importorskip("nevergrad")
    assert type(build_planner(load_config("wall", [f"plan.planner={name}"]).plan)) is CLASSES[name]


# Small settings objects of each planner; Nevergrad's needs the optional package.
SETTINGS = {
    "CEMPlanner": lambda: CEMPlanner(num_samples=8, num_elites=2, action_low=[-1.0, -0.5], action_high=1.0),
    "MPPIPlanner": lambda: MPPIPlanner(action_low=-2.0, action_high=2.0),
    "GradientPlanner": lambda: GradientPlanner(optimizer="adam"),
    "ICEMPlanner": lambda: ICEMPlanner(beta=1.0, action_low=-1.0, action_high=1.0),
    "NevergradPlanner": lambda: NevergradPlanner(optimizer="CMA", action_low=-1.0, action_high=1.0),
}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_planners_are_frozen_comparable_settings(name):
    if name == "NevergradPlanner":
        pytest.importorskip("nevergrad")
    planner = SETTINGS[name]()
    assert dataclasses.is_dataclass(planner)
    with pytest.raises(dataclasses.FrozenInstanceError):
        planner.num_samples = 1
    twin = dataclasses.replace(planner)
    assert twin == planner and hash(twin) == hash(planner)
    assert repr(planner).startswith(f"{name}(") and "action_low=" in repr(planner)


def test_bounds_are_stored_as_plain_values_and_checked_at_construction():
    planner = CEMPlanner(action_low=torch.tensor([-1.0, -0.25]), action_high=1.5)
    assert (planner.action_low, planner.action_high) == ((-1.0, -0.25), 1.5)
    with pytest.raises(ValueError, match="action_low must be <= action_high"):
        MPPIPlanner(action_low=[0.0, 2.0], action_high=[1.0, 1.0])
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        GradientPlanner(num_samples=2.5)
