"""The protocol check the planner tests share must fail a planner that merely has a ``plan`` attribute."""

import pytest

from jepa_wms.planning import Planner
from tests.planning.analytic import assert_is_planner


class _StringPlanner:
    def plan(self, cost_fn, batch_size, horizon, action_dim, generators, init_mean=None, device=None):
        return "a plan"


def test_a_plan_that_returns_a_string_fails_the_check():
    assert isinstance(_StringPlanner(), Planner)  # why isinstance alone proves nothing
    with pytest.raises(AssertionError):
        assert_is_planner(_StringPlanner())
